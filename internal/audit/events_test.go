package audit

import "github.com/psimatch/psimatch/psi/inventory"

// Events of the shapes the server writes, for the log's own tests.

// testLoad is an event with nested counts, like the server's load of the platform's inventory: its counts,
// never its values. It is written as {"event":"inventory_load", ...} with
// the fields of inventory.Summary inline.
type testLoad struct {
	// Source names the inventory, such as its file name.
	Source string `json:"source"`
	// Epoch is the epoch the load serves, if any.
	Epoch string `json:"epoch,omitempty"`
	// Seconds is how long the load took.
	Seconds float64 `json:"seconds"`
	inventory.Summary
}

// EventName returns "inventory_load".
func (testLoad) EventName() string { return "inventory_load" }

// testSession records one advertiser session, written as
// {"event":"session", ...}.
type testSession struct {
	// ID is the session's id.
	ID string `json:"id"`
	// Advertiser is the advertiser's registered name.
	Advertiser string `json:"advertiser"`
	// Mode is "count" or "members".
	Mode string `json:"mode"`
	// Epoch is the epoch the session was pinned to.
	Epoch string `json:"epoch"`
	// Elements is the number of elements the server evaluated for it.
	Elements int64 `json:"elements"`
	// Outcome is a short word such as "ok", "refused" or "failed".
	Outcome string `json:"outcome"`
	// Reason explains an outcome other than ok, such as "quota".
	Reason string `json:"reason,omitempty"`
	// Seconds is how long the session took, if known.
	Seconds float64 `json:"seconds,omitempty"`
}

// EventName returns "session".
func (testSession) EventName() string { return "session" }
