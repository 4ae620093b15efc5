// Package protocol carries psimatch over HTTPS: the wire messages, the
// platform's http.Handler (sessions, epochs, advertisers' quotas, audit
// log, metrics) and the advertiser's client. README.md beside this file is
// the wire specification, precise enough for a third party to write a
// client.
//
// New returns a Server; its Handler does not listen on its own: cmd/psimatch
// owns the listener, TLS, timeouts and graceful shutdown. The cryptography
// is in package psi; this package moves its byte frames and enforces who
// may evaluate how much.
package protocol
