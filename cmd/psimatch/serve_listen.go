package main

import (
	"crypto/tls"
	"log/slog"
	"net"

	"github.com/psimatch/psimatch/internal/store"
)

// listener is the server's bound port and TLS setup, made before the
// inventory is read so that a busy port or a bad certificate costs no
// precomputation.
type listener struct {
	ln          net.Listener
	tls         *tls.Config  // nil for --plaintext
	certFile    string       // the certificate to hand out for --ca-cert
	fingerprint string       // its sha256:... for --server-fingerprint
	metrics     net.Listener // --metrics-listen, nil for none
}

// Close closes what listen bound.
func (l *listener) Close() {
	l.ln.Close()
	if l.metrics != nil {
		l.metrics.Close()
	}
}

// listen checks the TLS flags, binds o.listen (and --metrics-listen) and loads or makes the
// certificate: a self-signed one in the data directory covers the listen
// address (every address and the host name when it is a wildcard) and each
// --tls-host.
func listen(o serveOptions, dir *store.Dir, log *slog.Logger) (*listener, error) {
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, usageError("--tls-cert and --tls-key go together")
	}
	if o.plaintext && (o.tlsCert != "" || len(o.tlsHosts) > 0) {
		return nil, usageError("--plaintext serves no TLS: drop --tls-cert, --tls-key and --tls-host")
	}
	if o.tlsCert != "" && len(o.tlsHosts) > 0 {
		return nil, usageError("--tls-host names the hosts of the self-signed certificate; with --tls-cert the certificate's own names apply")
	}
	for _, h := range o.tlsHosts {
		if !store.ValidHostName(h) {
			return nil, usageError("--tls-host %q: want a DNS name (letters, digits, hyphens and dots) or an IP address, without a port", h)
		}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, withHint(err, exitUsage, "choose another --listen address")
	}
	l := &listener{ln: ln}
	if o.metricsListen != "" {
		if l.metrics, err = net.Listen("tcp", o.metricsListen); err != nil {
			ln.Close()
			return nil, withHint(err, exitUsage, "choose another --metrics-listen address, or --metrics-listen '' for none")
		}
	}
	if o.plaintext {
		return l, nil
	}
	certFile, keyFile := o.tlsCert, o.tlsKey
	if certFile == "" {
		host, _, _ := net.SplitHostPort(ln.Addr().String())
		var created bool
		certFile, keyFile, created, err = dir.SelfSignedCert(append([]string{host}, o.tlsHosts...))
		if err != nil {
			l.Close()
			return nil, err
		}
		log.Info("using a self-signed TLS certificate; give it to advertisers for --ca-cert, or its fingerprint for --server-fingerprint", "path", certFile, "created", created)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		l.Close()
		return nil, withHint(err, exitInput, "check --tls-cert and --tls-key")
	}
	l.tls = store.TLSConfig(cert)
	l.certFile = certFile
	l.fingerprint = store.Fingerprint(cert.Certificate[0])
	log.Info("TLS certificate", "fingerprint", l.fingerprint)
	return l, nil
}
