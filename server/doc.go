// Package server is the platform's side of psimatch: an http.Handler that
// opens sessions, serves each epoch's coded set, evaluates blinded batches
// and enforces who may evaluate how much (advertisers' modes, rows, daily
// sessions and elements per epoch), with an audit line for every session
// and batch and Prometheus metrics on a separate handler.
//
// New reads the advertiser registry, derives the epoch key from the master
// seed and builds (or loads from the data directory) the epoch's set from
// the inventory, which only the purpose policy of package psi/inventory can
// feed. Its Handler does not listen on its own: cmd/psimatch owns the
// listener, TLS, timeouts and graceful shutdown. Run rotates epochs;
// Reload re-reads the inventory.
//
// Sessions and budget usage live in a state.Store (Config.State): the
// embedded journal in the data directory, or PostgreSQL shared by replicas,
// which then serve any request of any session whose epoch and set digest
// they hold (state.go). A batch is reserved before its body is read, and
// refusals, evaluations in flight and failed tokens are bounded (limits.go).
//
// The wire contract is package protocol; the cryptography is package psi.
package server
