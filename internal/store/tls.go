package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/psimatch/psimatch/internal/atomicfile"
)

// Validity of a self-signed certificate, and how close to its end one is
// replaced instead of reused.
const (
	certValidity  = 365 * 24 * time.Hour
	certRenewWhen = 7 * 24 * time.Hour
)

func (d *Dir) tlsDir() string { return filepath.Join(d.path, "tls") }

// certHosts turns the hosts a server listens on into the names its
// certificate must cover: empty and wildcard hosts ("", "0.0.0.0", "::")
// are dropped, and if nothing is left the defaults are localhost and
// 127.0.0.1.
func certHosts(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
			h = h[1 : len(h)-1]
		}
		if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
			continue
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		out = []string{"localhost", "127.0.0.1"}
	}
	return out
}

// SelfSignedCert returns the paths of a self-signed certificate and its key
// in DIR/tls (cert.pem, and key.pem with mode 0600) that cover hosts (see
// below). It reuses the existing pair when it parses, matches, covers every
// host and is valid for at least another 7 days; otherwise it creates an
// ECDSA P-256 certificate valid for one year, with a SAN for each host (an
// IP address or a DNS name), and reports created.
//
// Hosts are names or IP addresses, without ports. Empty and unspecified
// hosts ("", "0.0.0.0", "::") are dropped; if none is left the certificate
// covers localhost and 127.0.0.1. A key file readable by others is refused,
// not replaced: the error says to chmod it.
func (d *Dir) SelfSignedCert(hosts []string) (certFile, keyFile string, created bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	hosts = certHosts(hosts)
	certFile = filepath.Join(d.tlsDir(), "cert.pem")
	keyFile = filepath.Join(d.tlsDir(), "key.pem")

	keyPEM, err := readSecret(keyFile, 0, "tls key")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", "", false, err
	}
	if err == nil && reusable(certFile, keyPEM, hosts, time.Now()) {
		return certFile, keyFile, false, nil
	}

	certPEM, keyPEM, err := newSelfSigned(hosts, time.Now())
	if err != nil {
		return "", "", false, err
	}
	if err := os.MkdirAll(d.tlsDir(), 0o700); err != nil {
		return "", "", false, fmt.Errorf("store: tls: %w", err)
	}
	// The key first: a crash between the two leaves a pair that does not
	// match, which the next call replaces.
	if err := atomicfile.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", false, err
	}
	if err := atomicfile.WriteFile(certFile, certPEM, 0o644); err != nil {
		return "", "", false, err
	}
	return certFile, keyFile, true, nil
}

// reusable reports whether the certificate at certFile matches keyPEM,
// covers hosts and stays valid long enough.
func reusable(certFile string, keyPEM []byte, hosts []string, now time.Time) bool {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return false
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil || len(pair.Certificate) == 0 {
		return false
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return false
	}
	if now.Before(cert.NotBefore) || now.Add(certRenewWhen).After(cert.NotAfter) {
		return false
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// newSelfSigned makes a certificate and key, PEM encoded.
func newSelfSigned(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("store: tls: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("store: tls: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"psimatch"}, CommonName: "psimatch self-signed " + hosts[0]},
		NotBefore:             now.Add(-time.Hour), // tolerate clients whose clocks lag
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("store: tls: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("store: tls: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}
