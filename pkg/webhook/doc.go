// Package webhook holds the admission rules of orbweaver's pool kinds: defaulting and
// validation of SpiderIPPool, SpiderSubnet and SpiderReservedIP, as pure functions.
//
// A Default function fills in and normalises an object in place, the way SpiderPool's
// mutating webhooks do, so that the agent and the other rules can rely on clean data. It
// returns a warning for each value it corrected rather than merely filled in (a route
// destination with host bits), which the admission response carries to the user.
// A Validate function takes the object (on update also the stored old one) and the other
// pools and subnets the caller read from the API server, and returns a field.ErrorList
// that reports every problem at once, each at its exact path (spec.ips[2],
// spec.routes[0].gw): one round trip shows a user everything to fix, where SpiderPool
// stops at the first problem.
//
// The rules neither read nor write the API. server.go serves them through controller-
// runtime: it lists the pools and subnets (uncached, so that it sees a create that just
// happened), calls the rules and turns the list into the admission response. The
// refusals of ValidateAutoPoolEdit hold for hand edits only: server.go drops them when
// the request comes from the user the webhooks run as, the auto-pool controller's
// (autopool.go says why the user decides). Decisions
// about pools and subnets go one at a time through a Serializer (guard.go), so two
// overlapping creates racing each other cannot both pass.
//
// docs/reference/admission.md lists every rule with its path and an example message.
package webhook
