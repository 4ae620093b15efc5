// Package psi is the cryptographic core of psimatch: the RFC 9497 OPRF
// (github.com/cloudflare/circl/oprf and circl/group) applied to private set
// intersection between an advertiser and an ad platform. It has no network
// code; protocol/ carries its byte frames over HTTPS.
//
// Entry points, in the order a match uses them:
//
//   - SuiteByName picks ristretto255-SHA512 (default) or P256-SHA256.
//   - The key schedule (ratchet.go): RatchetOrigin and EpochSecret.Next walk
//     an HKDF ratchet of epoch secrets from the 32-byte master seed, and
//     DeriveGenerationKey derives the key of one generation of an epoch's set
//     with oprf.DeriveKey. (DeriveEpochKey, the seed-only derivation, remains
//     for tests and benchmarks.)
//   - BuildSet (platform, once per epoch) evaluates every eligible identifier
//     in parallel and returns the count-mode and members-mode output sets,
//     truncated and coded by psi/setcodec. It accepts only inventory.Eligible
//     values, which only the purpose policy can produce.
//   - NewCountBlinder / NewMembersBlinder (advertiser) blind a batch of
//     identifiers; Key.Evaluate (platform, per session) evaluates a batch of
//     blinded elements, shuffling them in count mode; the blinder's Finalize
//     unblinds with one batch inversion and returns the outputs to look up in
//     the downloaded set.
//
// What each party learns (semi-honest model): in count mode the advertiser
// learns how many of its identifiers are in the platform's eligible set, per
// batch (one batch per kind), and the set's size; in members mode it learns
// which ones. The platform learns only how many identifiers were sent. A
// modified client that blinds each element separately learns membership for
// as many identifiers as the platform lets it evaluate: the platform's
// defences are its per-advertiser budgets and key rotation, enforced in
// protocol/.
//
// Every element received from the other party is checked: wrong length,
// non-canonical encodings and the identity element are refused with the
// element's index.
package psi
