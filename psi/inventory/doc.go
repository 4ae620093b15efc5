// Package inventory owns the ad platform's identifier inventory and the
// purpose policy that decides which identifiers may ever become matchable.
//
// Each inventory record is `user_id, kind, value, purposes, opted_out`, where
// purposes is a set drawn from advertising, account and security. A record is
// eligible only when advertising is among its purposes and its user has not
// opted out. Every other record is excluded and counted under exactly one
// Reason, checked in this order: Invalid, SecurityOnly, NoAdvertisingPurpose,
// OptedOut.
//
// Start with NewPolicy, then call Scan on a file (CSV or JSON Lines, see
// NewSource) or Run on any other Source, such as a database query. Both stream
// the records through the policy and hand each distinct eligible identifier to
// a callback exactly once, as an Eligible.
//
// The guarantees:
//
//   - security is never an eligible purpose. NewPolicy refuses a Config that
//     names it (ErrSecurityNeverEligible), and the policy ignores it even if a
//     Policy were built by other means.
//   - An Eligible can only be made by Policy.Classify, after the record has
//     passed the policy. Its fields are unexported, it has no exported
//     constructor, and the zero Eligible is not Valid: its Input method
//     panics. The code that builds the matchable set accepts only Eligible,
//     so no other path can put an identifier into that set.
//   - Memory stays bounded however long the inventory: Run keeps a counter
//     set and one 64-bit key per distinct eligible identifier, never a
//     string.
//   - Values never appear in errors: a record is named by its position, as in
//     `inventory.csv: line 812: phone: no country code`, because its value is
//     personal data.
package inventory
