package store

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCertHosts(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{nil, []string{"localhost", "127.0.0.1"}},
		{[]string{""}, []string{"localhost", "127.0.0.1"}},
		{[]string{"0.0.0.0"}, []string{"localhost", "127.0.0.1"}},
		{[]string{"[::]"}, []string{"localhost", "127.0.0.1"}},
		{[]string{"psi.example.com", "0.0.0.0", "10.0.0.1"}, []string{"psi.example.com", "10.0.0.1"}},
		{[]string{"[::1]"}, []string{"::1"}},
	}
	for _, tt := range tests {
		if got := certHosts(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("certHosts(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSelfSignedCert(t *testing.T) {
	d := openTemp(t)
	certFile, keyFile, created, err := d.SelfSignedCert([]string{"0.0.0.0"})
	if err != nil || !created {
		t.Fatalf("first call: created %v, %v", created, err)
	}
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(pair.Certificate[0])
	if cert.VerifyHostname("localhost") != nil || cert.VerifyHostname("127.0.0.1") != nil {
		t.Errorf("certificate does not cover localhost and 127.0.0.1: %v %v", cert.DNSNames, cert.IPAddresses)
	}
	if d := time.Until(cert.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("valid for %v, want a year", d)
	}

	// A client that trusts cert.pem can talk to a server using the pair.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	pem, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("TLS handshake with the self-signed certificate: %v", err)
	}
	resp.Body.Close()

	// Reused while it covers the hosts.
	before, _ := os.ReadFile(certFile)
	if _, _, created, err := d.SelfSignedCert([]string{"127.0.0.1"}); err != nil || created {
		t.Errorf("second call: created %v, %v; want reuse", created, err)
	}
	if after, _ := os.ReadFile(certFile); string(after) != string(before) {
		t.Error("certificate changed on reuse")
	}
	// Replaced when a host is not covered.
	if _, _, created, err := d.SelfSignedCert([]string{"psi.example.com"}); err != nil || !created {
		t.Errorf("new host: created %v, %v; want a new certificate", created, err)
	}
	pair, _ = tls.LoadX509KeyPair(certFile, keyFile)
	cert, _ = x509.ParseCertificate(pair.Certificate[0])
	if cert.VerifyHostname("psi.example.com") != nil {
		t.Errorf("new certificate does not cover psi.example.com: %v", cert.DNSNames)
	}
}

func TestSelfSignedCertReplaced(t *testing.T) {
	d := openTemp(t)
	certFile, keyFile, _, err := d.SelfSignedCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Expiring within the renewal window.
	certPEM, keyPEM, err := newSelfSigned([]string{"localhost", "127.0.0.1"}, time.Now().Add(-360*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, keyPEM, 0o600)
	if _, _, created, err := d.SelfSignedCert(nil); err != nil || !created {
		t.Errorf("expiring certificate: created %v, %v; want replaced", created, err)
	}
	// A key that does not match the certificate (crash between the writes).
	_, otherKey, _ := newSelfSigned([]string{"localhost"}, time.Now())
	os.WriteFile(keyFile, otherKey, 0o600)
	if _, _, created, err := d.SelfSignedCert(nil); err != nil || !created {
		t.Errorf("mismatched key: created %v, %v; want replaced", created, err)
	}
	// A key readable by others is refused, not replaced.
	os.Chmod(keyFile, 0o644)
	if _, _, _, err := d.SelfSignedCert(nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: %v", err)
	}
}
