package fuel

// Meter hands one call's budget to a module instrumented with
// Config.Refuel a slice at a time: the global holds at most Slice units and
// the rest is kept in a reserve the guest cannot reach. When a check site
// finds the global below zero it calls the refuel import, whose host side
// is [Meter.Refuel]. The fuel left is always the global plus the reserve,
// so whether a check traps, and the energy a call uses, do not depend on
// the slice size: a check traps exactly when the whole budget is spent, as
// it would with the whole budget in the global.
//
// A Meter belongs to one instance and is used by one call at a time.
type Meter struct {
	// Slice is the most the global holds; zero or less hands out the
	// whole budget at once.
	Slice   int64
	reserve int64
	// Refuels counts Refuel calls since Start.
	Refuels int64
}

// Start begins a call of budget units and returns the value to set the
// fuel global to.
func (m *Meter) Start(budget int64) int64 {
	give := budget
	if m.Slice > 0 && give > m.Slice {
		give = m.Slice
	}
	m.reserve = budget - give
	m.Refuels = 0
	return give
}

// Refuel takes the fuel global's value g (below zero at a check site) and
// returns its new value: the next slice, less what was overspent, or, when
// the reserve does not cover the overspending, the fuel left (below zero:
// the check traps). The reserve is then empty.
func (m *Meter) Refuel(g int64) int64 {
	m.Refuels++
	left := g + m.reserve
	if left < 0 {
		m.reserve = 0
		return left
	}
	give := left
	if m.Slice > 0 && give > m.Slice {
		give = m.Slice
	}
	m.reserve = left - give
	return give
}

// Left returns the fuel left when the global holds g: below zero after a
// fuel trap or a call that overspent in its last unchecked segments.
func (m *Meter) Left(g int64) int64 { return g + m.reserve }
