package advertisers

import (
	"testing"
	"time"
)

func TestSessionsPerDay(t *testing.T) {
	var q Quotas
	a := &Advertiser{Name: "acme", SessionsPerDay: 3}
	other := &Advertiser{Name: "globex", SessionsPerDay: 1}
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if _, ok := q.StartSession(a, t0.Add(time.Duration(i)*time.Hour)); !ok {
			t.Fatalf("session %d refused", i+1)
		}
	}
	retry, ok := q.StartSession(a, t0.Add(5*time.Hour))
	if ok || retry != 19*time.Hour {
		t.Errorf("4th session: ok %v, retry %v; want refused, retry 19h (when the first leaves the window)", ok, retry)
	}
	// The refusal counted nothing, and other advertisers are separate.
	if _, ok := q.StartSession(other, t0.Add(5*time.Hour)); !ok {
		t.Error("another advertiser's session refused")
	}
	if _, ok := q.StartSession(a, t0.Add(Day)); !ok {
		t.Error("session refused once the first left the rolling day")
	}
	retry, ok = q.StartSession(a, t0.Add(Day))
	if ok || retry != time.Hour {
		t.Errorf("next: ok %v, retry %v; want refused, retry 1h", ok, retry)
	}

	// A limit lowered by a reload waits for enough sessions to leave.
	a.SessionsPerDay = 1
	retry, ok = q.StartSession(a, t0.Add(Day+time.Minute))
	if ok || retry != Day-time.Minute {
		t.Errorf("lowered limit: ok %v, retry %v; want refused, retry 23h59m (all three must leave)", ok, retry)
	}
}

func TestElementsPerEpoch(t *testing.T) {
	var q Quotas
	a := &Advertiser{Name: "acme", ElementsPerEpoch: 1000}
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	ends := now.Add(14 * time.Hour)
	if _, ok := q.Charge(a, "e1", 600, now, ends); !ok {
		t.Fatal("first charge refused")
	}
	retry, ok := q.Charge(a, "e1", 401, now, ends)
	if ok || retry != 14*time.Hour {
		t.Errorf("over budget: ok %v, retry %v; want refused, retry 14h", ok, retry)
	}
	if q.Used("acme", "e1") != 600 {
		t.Errorf("used %d after a refusal, want 600", q.Used("acme", "e1"))
	}
	if _, ok := q.Charge(a, "e1", 400, now, ends); !ok {
		t.Error("charge up to the budget refused")
	}
	if _, ok := q.Charge(a, "e1", 1, now, ends); ok {
		t.Error("charge beyond the budget accepted")
	}
	// The next epoch has a fresh budget.
	later := ends.Add(time.Minute)
	if _, ok := q.Charge(a, "e2", 1000, later, later.Add(24*time.Hour)); !ok {
		t.Error("next epoch's charge refused")
	}
	// A session pinned to the ended epoch still finds its budget spent, and
	// is told to retry in at least a second.
	if retry, ok := q.Charge(a, "e1", 1, later, ends); ok || retry != time.Second {
		t.Errorf("ended epoch: ok %v, retry %v; want refused, retry 1s", ok, retry)
	}
	// A day after its end, an epoch's usage is forgotten.
	q.Charge(a, "e3", 0, ends.Add(Day+time.Second), ends.Add(2*Day))
	if q.Used("acme", "e1") != 0 || q.Used("acme", "e2") != 1000 {
		t.Errorf("usage after a day: e1 %d, e2 %d; want 0, 1000", q.Used("acme", "e1"), q.Used("acme", "e2"))
	}
	if _, ok := q.Charge(a, "e2", -1, later, later.Add(time.Hour)); ok {
		t.Error("negative charge accepted")
	}
}
