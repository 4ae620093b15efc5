// Package protocol is psimatch's wire contract and the advertiser's client:
// the paths, headers, content types and JSON messages of version 1, and
// Client, which runs a match against any conforming server. README.md
// beside this file is the wire specification, precise enough for a third
// party to write a client in another language.
//
// Start with Client.Match for a whole match. A program that drives the
// steps itself calls Client.Open, then Session.Set and Session.Batch (or
// Session.Evaluate with elements it blinded itself). The cryptography is in
// package psi; this package moves its byte frames and checks every value the
// server chose before using it.
//
// A third-party Go client imports this package and psi only: the platform's
// side (sessions, epochs, budgets, metrics, audit) is in package server, and
// nothing here links Prometheus, the data directory or the audit log
// (internal/deps fails if it does).
package protocol
