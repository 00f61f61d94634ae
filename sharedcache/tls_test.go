package sharedcache

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pictofs/pictofs/sharedcache/redistest"
)

// TestTLS reads and writes through rediss:// to a server with a certificate
// from a private CA, and checks that the tier refuses a server it cannot
// verify and a plain-text client is a miss, not a hang.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caPool, certFile, keyFile, caFile := writeTestCertificates(t, dir)
	srv := redistest.Start(t, "--tls-port", "{port}", "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", caFile, "--tls-auth-clients", "no")
	ctx := context.Background()

	tier, _ := newTier(t, "rediss://"+srv.Addr+"/0", Options{TLSConfig: &tls.Config{RootCAs: caPool}})
	tier.Publish("k", blob("k", 1000))
	flush(t, tier)
	got, ok := tier.Get(ctx, "k", 1000)
	if !ok {
		t.Fatalf("Get over TLS: miss (stats %+v)", tier.Stats())
	}
	mustEqual(t, "over TLS", got, blob("k", 1000))

	untrusting, logs := newTier(t, "rediss://"+srv.Addr+"/0", Options{})
	if err := untrusting.Ping(ctx); err == nil {
		t.Errorf("Ping with the system roots: got no error, want a certificate error")
	}
	if _, ok := untrusting.Get(ctx, "k", 1000); ok {
		t.Errorf("Get without trusting the CA: got a hit")
	}
	if n := logs.warnings("shared cache unavailable"); n != 1 {
		t.Errorf("got %d outage warnings, want 1:\n%s", n, logs)
	}

	plain, _ := newTier(t, "redis://"+srv.Addr+"/0", Options{OpTimeout: 200 * time.Millisecond})
	if ok, took := timedGet(plain, "k", 1000); ok || took > 200*time.Millisecond+readSlack {
		t.Errorf("plain-text Get of a TLS server: got hit %v after %s, want a miss within the bound", ok, took)
	}
}

// writeTestCertificates writes a CA and a server certificate for 127.0.0.1
// signed by it into dir.
func writeTestCertificates(t *testing.T, dir string) (pool *x509.CertPool, certFile, keyFile, caFile string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, serverKey := newKey(), newKey()
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pictofs test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	serverTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTemplate, ca, &serverKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, kind string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return pool, write("server.crt", "CERTIFICATE", serverDER), write("server.key", "EC PRIVATE KEY", keyDER),
		write("ca.crt", "CERTIFICATE", caDER)
}
