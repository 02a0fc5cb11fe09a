package ipam

import "testing"

func TestRelateEndpoint(t *testing.T) {
	ep := func(uid, ctr string, kept bool) EndpointFacts {
		return EndpointFacts{Exists: true, PodUID: uid, ContainerID: ctr, KeptFor: kept}
	}
	tests := []struct {
		name string
		e    EndpointFacts
		c    CallFacts
		want EndpointRelation
	}{
		{"no endpoint", EndpointFacts{}, CallFacts{PodUID: "u1", ContainerID: "c1"}, EndpointNone},
		{"a repeated ADD", ep("u1", "c1", false), CallFacts{PodUID: "u1", ContainerID: "c1"}, EndpointSame},
		{"a DEL without the pod UID", ep("u1", "c1", false), CallFacts{ContainerID: "c1"}, EndpointSame},
		{"a re-created sandbox", ep("u1", "c1", false), CallFacts{PodUID: "u1", ContainerID: "c2"}, EndpointOtherSandbox},
		{"a DEL of an old sandbox without the pod UID", ep("u1", "c2", false), CallFacts{ContainerID: "c1"}, EndpointOtherSandbox},
		{"a StatefulSet's next instance", ep("u1", "c1", true), CallFacts{PodUID: "u2", ContainerID: "c2", Retains: true}, EndpointPredecessor},
		{"the next instance, same sandbox ID", ep("u1", "c1", true), CallFacts{PodUID: "u2", ContainerID: "c1", Retains: true}, EndpointPredecessor},
		{"kept, but the pod does not retain (fixed IPs off)", ep("u1", "c1", true), CallFacts{PodUID: "u2", ContainerID: "c2"}, EndpointPreviousPod},
		{"a pod that retains, an endpoint not kept for it", ep("u1", "c1", false), CallFacts{PodUID: "u2", ContainerID: "c2", Retains: true}, EndpointPreviousPod},
		{"a previous pod of the same name", ep("u1", "c1", false), CallFacts{PodUID: "u2", ContainerID: "c2"}, EndpointPreviousPod},
		{"a stale DEL of the previous pod", ep("u2", "c2", false), CallFacts{PodUID: "u1", ContainerID: "c1"}, EndpointPreviousPod},
		{"SpiderPool's endpoint: a DEL or CHECK of its pod", ep("u1", "", false), CallFacts{PodUID: "u1", ContainerID: "c1"}, EndpointSame},
		{"SpiderPool's endpoint: a DEL without the pod UID", ep("u1", "", false), CallFacts{ContainerID: "c1"}, EndpointSame},
		{"SpiderPool's endpoint: an ADD adopts it", ep("u1", "", false), CallFacts{PodUID: "u1", ContainerID: "c1", Add: true}, EndpointOtherSandbox},
		{"SpiderPool's endpoint: a DEL of another pod", ep("u1", "", false), CallFacts{PodUID: "u2", ContainerID: "c1"}, EndpointPreviousPod},
		{"an adopted endpoint: a DEL of another sandbox", ep("u1", "c2", false), CallFacts{PodUID: "u1", ContainerID: "c1"}, EndpointOtherSandbox},
		{"an ADD, a repeated one", ep("u1", "c1", false), CallFacts{PodUID: "u1", ContainerID: "c1", Add: true}, EndpointSame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RelateEndpoint(tt.e, tt.c); got != tt.want {
				t.Errorf("RelateEndpoint(%+v, %+v) = %d, want %d", tt.e, tt.c, got, tt.want)
			}
		})
	}
}
