package agent

import (
	"context"
	"errors"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
)

// GC releases this node's interfaces attached by the given network whose attachment is
// not in the valid list. Interfaces of other networks, or of unknown network, stay.
func (s *Service) GC(ctx context.Context, args *models.GCArgs) (released int64, err error) {
	start := time.Now()
	defer func() { s.metrics.observe("gc", start, err) }()
	valid := map[[2]string]bool{}
	for _, a := range args.ValidAttachments {
		valid[[2]string{*a.ContainerID, *a.IfName}] = true
	}
	endpoints, err := s.cluster.Endpoints(ctx)
	if err != nil {
		return 0, err
	}
	var errs []error
	for i := range endpoints {
		se := &endpoints[i]
		if se.Status.Current.Node != s.node || se.Status.Current.Orbweaver == nil {
			continue
		}
		for nic, network := range se.Status.Current.Orbweaver.Networks {
			if network != *args.NetworkName || valid[[2]string{containerOf(se), nic}] {
				continue
			}
			if err := s.releaseNIC(ctx, se, nic); err != nil {
				errs = append(errs, err)
				continue
			}
			released++
			s.log.Info("released by CNI GC", "SpiderEndpoint", se.Namespace+"/"+se.Name, "ifName", nic)
			if se, err = s.endpoints.Get(ctx, se.Namespace, se.Name); err != nil {
				break
			}
		}
	}
	return released, errors.Join(errs...)
}
