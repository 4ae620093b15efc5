package server

import (
	"encoding/json"
	"testing"
)

// An inventory_load event carries the counts of inventory.Summary and
// nothing else of the inventory.
func TestInventoryLoadFields(t *testing.T) {
	b, _ := json.Marshal(InventoryLoad{})
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"source", "seconds", "summary"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing from %s", k, b)
		}
	}
	summary, _ := m["summary"].(map[string]any)
	for _, k := range []string{"records", "eligible_records", "excluded", "eligible_identifiers"} {
		if _, ok := summary[k]; !ok {
			t.Errorf("summary field %q missing from %s", k, b)
		}
	}
}
