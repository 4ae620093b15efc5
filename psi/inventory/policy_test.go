package inventory

import (
	"errors"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/psi/normalize"
)

func TestNewPolicyRefusesSecurity(t *testing.T) {
	for _, purposes := range [][]string{
		{"security"},
		{"advertising", "security"},
		{"Security"},
		{" SECURITY ", "advertising"},
		{"account", "advertising", "security"},
	} {
		p, err := NewPolicy(Config{Normalizer: normalize.Rules{}, EligiblePurposes: purposes})
		if p != nil || !errors.Is(err, ErrSecurityNeverEligible) {
			t.Errorf("NewPolicy(%q) = %v, %v; want ErrSecurityNeverEligible", purposes, p, err)
			continue
		}
		if !strings.Contains(err.Error(), "security is never an eligible purpose") {
			t.Errorf("NewPolicy(%q): error %q does not name the rule", purposes, err)
		}
	}
}

func TestNewPolicyConfig(t *testing.T) {
	tests := []struct {
		name    string
		config  Config
		wantErr string
	}{
		{"default", Config{Normalizer: normalize.Rules{}}, ""},
		{"advertising", Config{Normalizer: normalize.Rules{}, EligiblePurposes: []string{"advertising"}}, ""},
		{"advertising and account", Config{Normalizer: normalize.Rules{}, EligiblePurposes: []string{"advertising", "account"}}, ""},
		{"account alone", Config{Normalizer: normalize.Rules{}, EligiblePurposes: []string{"account"}}, "must include advertising"},
		{"unknown purpose", Config{Normalizer: normalize.Rules{}, EligiblePurposes: []string{"advertising", "marketing"}}, "unknown eligible purpose"},
		{"region", Config{Normalizer: normalize.Rules{}, DefaultRegion: "us"}, ""},
		{"bad region", Config{Normalizer: normalize.Rules{}, DefaultRegion: "USA"}, "default region"},
		{"unknown region", Config{Normalizer: normalize.Rules{}, DefaultRegion: "QQ"}, "default region"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPolicy(tc.config)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("NewPolicy: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("NewPolicy = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestClassifyReasonOrder checks that each record is counted under the first
// reason that applies, in the order invalid, security_only,
// no_advertising_purpose, opted_out.
func TestClassifyReasonOrder(t *testing.T) {
	const phone, email = "+14155550132", "alice@example.com"
	tests := []struct {
		name     string
		kind     string
		value    string
		purposes string
		optedOut string
		want     Reason
	}{
		{"advertising", "email", email, "advertising", "false", Included},
		{"advertising, empty opted_out", "email", email, "advertising", "", Included},
		{"advertising and security", "phone", phone, "security;advertising", "false", Included},
		{"all three", "phone", phone, "account;security;advertising", "", Included},
		{"spaces and case", " Phone ", phone, " Advertising ; account ", " FALSE ", Included},

		{"bad value beats security only", "phone", "12", "security", "true", Invalid},
		{"unknown purpose beats advertising", "email", email, "advertising;marketing", "false", Invalid},
		{"bad opted_out beats security only", "phone", phone, "security", "maybe", Invalid},
		{"bad kind", "fax", phone, "advertising", "false", Invalid},
		{"empty value", "email", " ", "advertising", "false", Invalid},
		{"national phone without region", "phone", "(415) 555-0132", "advertising", "false", Invalid},

		{"security only beats opted out", "phone", phone, "security", "true", SecurityOnly},
		{"security only, repeated", "phone", phone, "security;;security", "false", SecurityOnly},
		{"security only", "email", email, "security", "", SecurityOnly},

		{"account and security", "phone", phone, "security;account", "false", NoAdvertisingPurpose},
		{"account beats opted out", "email", email, "account", "true", NoAdvertisingPurpose},
		{"no purposes", "email", email, "", "false", NoAdvertisingPurpose},

		{"opted out", "email", email, "advertising", "true", OptedOut},
		{"opted out with security", "phone", phone, "advertising;security", "TRUE", OptedOut},
	}
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}})
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Raw{Line: int64(i + 2), UserID: "u1", Kind: tc.kind, Value: tc.value, Purposes: []string{tc.purposes}, OptedOut: tc.optedOut}
			got, err := p.Classify(r)
			if got != tc.want {
				t.Fatalf("Classify = %v (%v), want %v", got, err, tc.want)
			}
			if (err != nil) != (got == Invalid) {
				t.Errorf("Classify = %v with error %v", got, err)
			}
		})
	}
}

// TestSecurityMaskedEvenIfConfigured builds a Policy whose eligible set
// includes security without NewPolicy, as a bug might, and checks that
// security-only records are still excluded.
func TestSecurityMaskedEvenIfConfigured(t *testing.T) {
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}})
	p.eligible |= security
	for _, purposes := range []string{"security", "security;account"} {
		r := Raw{Line: 1, UserID: "u1", Kind: "phone", Value: "+14155550132", Purposes: []string{purposes}}
		if reason, _ := p.Classify(r); reason == Included {
			t.Errorf("purposes %q: a security identifier was made eligible", purposes)
		}
	}
}

// TestZeroPolicyFailsClosed: a Policy not made by NewPolicy has no
// normalizer and makes nothing eligible.
func TestZeroPolicyFailsClosed(t *testing.T) {
	var p Policy
	r := Raw{Line: 1, UserID: "u1", Kind: "email", Value: "alice@example.com", Purposes: []string{"advertising"}}
	if reason, err := p.Classify(r); reason != Invalid || err == nil {
		t.Errorf("zero Policy: %v, %v; want Invalid with an error", reason, err)
	}
	if _, err := NewPolicy(Config{}); err == nil {
		t.Error("NewPolicy without a Normalizer succeeded")
	}
}

func TestAccountEligibleWhenConfigured(t *testing.T) {
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}, EligiblePurposes: []string{"advertising", "account"}})
	r := Raw{Line: 1, UserID: "u1", Kind: "email", Value: "alice@example.com", Purposes: []string{"account"}}
	if reason, err := p.Classify(r); reason != Included {
		t.Errorf("account with account eligible: %v, %v", reason, err)
	}
	r.Purposes = []string{"security"}
	if reason, _ := p.Classify(r); reason != SecurityOnly {
		t.Errorf("security with account eligible: %v", reason)
	}
}

// TestErrorsHideValues checks that the error of an invalid record names the
// field and never holds the record's values, which are personal data.
func TestErrorsHideValues(t *testing.T) {
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}})
	secrets := []Raw{
		{UserID: "u-secret-1", Kind: "phone", Value: "0455 SECRET 1", Purposes: []string{"advertising"}},
		{UserID: "u-secret-2", Kind: "email", Value: "secret.two@", Purposes: []string{"advertising"}},
		{UserID: "u-secret-3", Kind: "secretkind", Value: "x", Purposes: []string{"advertising"}},
		{UserID: "u-secret-4", Kind: "email", Value: "a@b.c", Purposes: []string{"advertising;secret4@example.com"}},
		{UserID: "u-secret-5", Kind: "email", Value: "a@b.c", Purposes: []string{"advertising"}, OptedOut: "secret5"},
		{UserID: "u-secret-6", Kind: "phone", Value: "4155550199", Purposes: []string{"advertising"}},
	}
	for i, r := range secrets {
		r.Line = int64(i + 2)
		reason, err := p.Classify(r)
		if reason != Invalid || err == nil {
			t.Errorf("line %d: %v, want Invalid", r.Line, reason)
			continue
		}
		msg := (&RecordError{Source: "inventory.csv", Line: r.Line, Err: err}).Error()
		t.Log(msg)
		if strings.Contains(strings.ToLower(msg), "secret") || strings.Contains(msg, "4155550199") {
			t.Errorf("line %d: error %q holds a value", r.Line, msg)
		}
	}
}
