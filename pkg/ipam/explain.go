package ipam

// Explanation is what SelectPools decided for one interface of a pod, and why: the rule
// that named the pools and, per IP family, each pool it named with the reason it was
// refused. ExplainSelection returns it, for `kubectl orbweaver pool why`; it comes from
// the same code as SelectPools, so it cannot tell a different story than the agent.
type Explanation struct {
	// Interface is the interface selected for (SelectionInput.IfName).
	Interface string
	// Source is the rule that named the pools (Selection.Source); "" when selection
	// failed before a rule named any (a malformed annotation, no rule naming a pool, an
	// auto pool not created yet: see Err).
	Source string
	// Auto is true when the pools are the application's auto-created pools.
	Auto bool
	// TopController and MultusNetwork are the pod's, as affinities were matched.
	TopController TopController
	MultusNetwork string
	// Families are the families the rule named: IPv4 first.
	Families []FamilyExplanation
	// Selection is SelectPools' result, and Err its error.
	Selection Selection
	Err       error
}

// FamilyExplanation is one IP family of an Explanation.
type FamilyExplanation struct {
	// Family is v2beta1.IPv4 or v2beta1.IPv6.
	Family int64
	// Source is the rule, and the list of it, that named the pools of the family.
	Source string
	// NotServed is true when the rule names pools of a family the cluster does not
	// serve (the agent's --enable-ipv4/--enable-ipv6): the family is skipped.
	NotServed bool
	// Decisions are the pools named, wildcards expanded: the admitted ones first, in
	// the order the agent tries them, then the refused ones in the order named.
	Decisions []PoolDecision
	// Err is why the family has no candidate (ErrUnknownPool, ErrPoolRefused), nil
	// when it has one or is not served.
	Err error
}

// PoolDecision is the decision about one pool named for a family of an interface.
type PoolDecision struct {
	Pool string
	// Refusal is why the pool does not serve the interface (terminating, disabled,
	// SpiderPool's records not imported, another family, an affinity that does not
	// match); "" when it is admitted.
	Refusal string
}

// Admitted tells whether the pool is a candidate.
func (d PoolDecision) Admitted() bool { return d.Refusal == "" }

// Candidates are the admitted pools of the family, in the order the agent tries them.
func (f FamilyExplanation) Candidates() []string {
	var out []string
	for _, d := range f.Decisions {
		if d.Admitted() {
			out = append(out, d.Pool)
		}
	}
	return out
}

// ExplainSelection is SelectPools with its reasons. It never fails: the error SelectPools
// would return is in Err, and what was decided before it in the rest.
func ExplainSelection(in SelectionInput) Explanation {
	sel, ex, err := selectPools(in)
	ex.Selection, ex.Err = sel, err
	return ex
}
