// Package synth makes deterministic synthetic data for the demo, the tests
// and the benchmarks: a platform inventory in which every identifier carries
// its collection purposes, and an advertiser customer list with a planted,
// known overlap and planted security-only identifiers that must never match.
//
// The identifiers are fabricated (example.com-style domains, +1 555 numbers);
// no real person's data is involved.
package synth

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
)

// Config sizes a data set. Every field has a usable zero value except the
// sizes.
type Config struct {
	Seed           uint64
	PlatformIDs    int // inventory records
	AdvertiserRows int // customer list rows
	// Overlap is how many advertiser rows hold an identifier that is in the
	// platform's eligible set. Zero means a tenth of AdvertiserRows.
	Overlap int
	// SecurityOnly is how many advertiser rows hold an identifier that the
	// platform has only for security (two-factor phones): none may match.
	// Zero means a fiftieth of AdvertiserRows; negative means none.
	SecurityOnly int
}

// Truth is what the generator planted.
type Truth struct {
	Eligible      int            // distinct eligible platform identifiers
	EligibleKinds map[string]int // by kind
	Overlap       int            // advertiser rows in the eligible set
	OverlapKinds  map[string]int // by kind
	SecurityOnly  int            // advertiser rows holding security-only identifiers
	AdvertiserIDs int            // advertiser rows holding an identifier
}

// The purpose mix of platform records, by record index modulo 10.
func purposesOf(i int) (purposes string, optedOut bool) {
	switch i % 10 {
	case 0:
		return "security", false // a two-factor phone or recovery email
	case 1:
		return "account", false
	case 2:
		return "advertising;account", true // the user opted out
	default:
		return "advertising;account", false
	}
}

func eligible(i int) bool { p, o := purposesOf(i); return p != "security" && p != "account" && !o }

// identifier i of the platform: records with i%10 == 0 are phones (so the
// security-only ones are two-factor phones), every third other one too.
func platformID(i int) (kind, value string) {
	if i%10 == 0 || i%3 == 0 {
		return "phone", fmt.Sprintf("+1%03d%07d", 201+i/10000000, i%10000000)
	}
	return "email", fmt.Sprintf("user%d@example.com", i)
}

// outsider j is an identifier the platform does not have.
func outsider(j int) (kind, value string) {
	if j%2 == 0 {
		return "email", fmt.Sprintf("customer%d@example.org", j)
	}
	return "phone", fmt.Sprintf("+44 7%09d", j)
}

func (c *Config) defaults() {
	if c.Overlap == 0 {
		c.Overlap = c.AdvertiserRows / 10
	}
	if c.SecurityOnly == 0 {
		c.SecurityOnly = c.AdvertiserRows / 50
	}
	c.SecurityOnly = max(c.SecurityOnly, 0)
	maxEligible := c.PlatformIDs * 7 / 10
	c.Overlap = min(c.Overlap, maxEligible, c.AdvertiserRows)
	c.SecurityOnly = min(c.SecurityOnly, c.PlatformIDs/10, c.AdvertiserRows-c.Overlap)
}

// WriteInventory writes the platform inventory as CSV with the header
// user_id,kind,value,purposes,opted_out.
func WriteInventory(w io.Writer, c Config) error {
	c.defaults()
	bw := bufio.NewWriterSize(w, 1<<16)
	fmt.Fprintln(bw, "user_id,kind,value,purposes,opted_out")
	for i := range c.PlatformIDs {
		kind, value := platformID(i)
		p, o := purposesOf(i)
		fmt.Fprintf(bw, "u%d,%s,%s,%s,%v\n", i, kind, value, p, o)
	}
	return bw.Flush()
}

// WriteAdvertiser writes the customer list as CSV with the header
// customer_id,email,phone and returns what was planted. Rows are shuffled
// with the seed.
func WriteAdvertiser(w io.Writer, c Config) (Truth, error) {
	c.defaults()
	r := rand.New(rand.NewPCG(c.Seed, 0x9e3779b97f4a7c15))
	t := Truth{EligibleKinds: map[string]int{}, OverlapKinds: map[string]int{}}
	for i := range c.PlatformIDs {
		if eligible(i) {
			t.Eligible++
			k, _ := platformID(i)
			t.EligibleKinds[k]++
		}
	}
	// Pick distinct eligible and security-only platform records.
	type row struct{ kind, value string }
	rows := make([]row, 0, c.AdvertiserRows)
	perm := r.Perm(c.PlatformIDs)
	for _, i := range perm {
		if len(rows) == c.Overlap {
			break
		}
		if eligible(i) {
			k, v := platformID(i)
			rows = append(rows, row{k, v})
			t.OverlapKinds[k]++
		}
	}
	t.Overlap = len(rows)
	for _, i := range perm {
		if t.SecurityOnly == c.SecurityOnly {
			break
		}
		if p, _ := purposesOf(i); p == "security" {
			_, v := platformID(i)
			rows = append(rows, row{"phone", v})
			t.SecurityOnly++
		}
	}
	for j := 0; len(rows) < c.AdvertiserRows; j++ {
		k, v := outsider(j)
		rows = append(rows, row{k, v})
	}
	t.AdvertiserIDs = len(rows)
	r.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	bw := bufio.NewWriterSize(w, 1<<16)
	fmt.Fprintln(bw, "customer_id,email,phone")
	for i, x := range rows {
		if x.kind == "email" {
			fmt.Fprintf(bw, "c%d,%s,\n", i, x.value)
		} else {
			fmt.Fprintf(bw, "c%d,,%s\n", i, x.value)
		}
	}
	return t, bw.Flush()
}
