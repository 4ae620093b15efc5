// Package inventory owns the ad platform's identifier inventory and the
// purpose policy that decides which identifiers may ever become matchable.
//
// Each inventory record is `user_id, kind, value, purposes, opted_out`, where
// purposes is a set drawn from advertising, account and security. Each record
// is first judged on its own and counted under the first Reason that applies:
// Invalid, SecurityOnly, NoAdvertisingPurpose, OptedOut. Then deny wins, by
// value and by user: a record that passes is still excluded when its user has
// an opted-out record elsewhere (UserOptedOut), or when any record of the same
// normalized value, of any user, is security-only (ValueSecurityOnly), opted
// out or held by an opted-out user (ValueOptedOut), or invalid in another
// field (ValueInvalid).
//
// Start with NewPolicy, then call Scan on a file (CSV or JSON Lines, see
// NewSource) or Run with an Opener for any other source, such as a database
// query. Deny wins needs the whole inventory before it can judge a value, so
// Run reads it three times: Check reads it twice (the opted-out users, then
// the state of every value) and returns the counts and the Fingerprint of the
// eligible set; Result.Yield reads it once more and hands each distinct
// eligible identifier to a callback exactly once, as an Eligible. Each read
// classifies the records on every core, in batches, in order.
//
// The guarantees:
//
//   - security is never an eligible purpose. NewPolicy refuses a Config that
//     names it (ErrSecurityNeverEligible), and the policy ignores it even if a
//     Policy were built by other means.
//   - An Eligible is made only by the deny-wins filter (Result.Yield), after
//     every record has been read. Its fields are unexported, no exported
//     function returns one, and the zero Eligible is not Valid: its Input
//     method panics. The code that builds the matchable set accepts only
//     Eligible, so no other path can put an identifier into that set.
//   - Memory stays bounded however long the inventory: a 16-byte key and 8
//     bytes of state per distinct value, and a 16-byte keyed hash per user
//     who opted out, never a string.
//   - Values never appear in errors: a record is named by its position, as in
//     `inventory.csv: line 812: phone: no country code`, because its value is
//     personal data.
package inventory
