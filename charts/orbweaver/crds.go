// Package orbweaver embeds the chart's CustomResourceDefinitions (crds/, written by
// `make generate`), so that the controller can put them in place at start (see
// pkg/crdcheck.Upgrade): Helm installs crds/ only when the CRDs do not exist yet.
package orbweaver

import "embed"

// CRDs holds crds/*.yaml.
//
//go:embed crds/*.yaml
var CRDs embed.FS
