package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
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

// localAddrs returns the machine's host name and its non-loopback
// interface addresses: what a certificate for a server listening on all
// interfaces must cover. A variable so that tests can fix the answer.
var localAddrs = func() (string, []net.IP) {
	host, _ := os.Hostname()
	var ips []net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() && !n.IP.IsUnspecified() {
			ips = append(ips, n.IP)
		}
	}
	return host, ips
}

// certHosts turns the hosts a server listens on (and the names added with
// serve --tls-host) into the names its certificate must cover. An empty
// list and empty hosts mean localhost and 127.0.0.1. A wildcard host
// ("0.0.0.0", "::") means every way the machine can be reached: localhost,
// 127.0.0.1, ::1, the host name and every non-loopback interface address.
// A loopback address brings localhost along. Duplicates are dropped.
func certHosts(hosts []string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(h string) {
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		} else {
			h = strings.ToLower(strings.TrimSuffix(h, "."))
		}
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	for _, h := range hosts {
		if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
			h = h[1 : len(h)-1]
		}
		ip := net.ParseIP(h)
		switch {
		case h == "":
		case ip != nil && ip.IsUnspecified():
			add("localhost")
			add("127.0.0.1")
			add("::1")
			name, ips := localAddrs()
			if ValidHostName(name) { // a name a certificate cannot hold is left out, not fatal
				add(name)
			}
			for _, ip := range ips {
				add(ip.String())
			}
		case ip != nil && ip.IsLoopback():
			add(h)
			add("localhost")
		default:
			add(h)
		}
	}
	if len(out) == 0 {
		out = []string{"localhost", "127.0.0.1"}
	}
	return out
}

// ValidHostName reports whether h is an IP address or a DNS name that a
// certificate can carry and a client can verify: dot-separated labels of
// ASCII letters, digits and hyphens, not starting or ending with a hyphen,
// at most 253 characters.
func ValidHostName(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i] | 0x20
			if !('a' <= c && c <= 'z' || '0' <= label[i] && label[i] <= '9' || label[i] == '-') {
				return false
			}
		}
	}
	return true
}

// Fingerprint is how an operator reads a certificate out to an advertiser
// (match --server-fingerprint): "sha256:" and the lowercase hex SHA-256 of
// its DER encoding.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TLSConfig is the server's TLS configuration for a certificate: TLS 1.2 or
// 1.3, and in TLS 1.2 only forward-secret AEAD cipher suites (TLS 1.3 has
// no others).
func TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: AEADSuites,
	}
}

// AEADSuites are the TLS 1.2 cipher suites a server offers.
var AEADSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// SelfSignedCert returns the paths of a self-signed certificate and its key
// in DIR/tls (cert.pem, and key.pem with mode 0600) that cover hosts (see
// below). It reuses the existing pair when it parses, matches, covers every
// host and is valid for at least another 7 days; otherwise (the names no
// longer fit, say) it creates an ECDSA P-256 certificate valid for one year,
// with a SAN for each host (an IP address or a DNS name), and reports
// created.
//
// Hosts are names or IP addresses, without ports: the listen host and any
// added names. A wildcard host ("0.0.0.0", "::") stands for localhost, the
// loopback addresses, the host name and every non-loopback interface
// address; a loopback address brings localhost along; with no host the
// certificate covers localhost and 127.0.0.1. A key file readable by others
// is refused, not replaced: the error says to chmod it.
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
