package redistest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// TLSServer is a redis-server that also listens with TLS, on a certificate from a CA made for the test.
type TLSServer struct {
	*Server
	TLSAddr string
	CAFile  string // PEM of the CA, for the client to trust
}

// StartTLSServer runs a private redis-server with --tls-port, skipping the test when this build of
// redis-server has no TLS support.
func StartTLSServer(t testing.TB) *TLSServer {
	t.Helper()
	// A build without TLS rejects the directive; one with TLS gets as far as the missing certificate.
	out, _ := exec.Command("redis-server", "--port", "0", "--bind", "127.0.0.1", "--tls-port", "1",
		"--tls-cert-file", "/nonexistent", "--tls-key-file", "/nonexistent").CombinedOutput()
	if !strings.Contains(string(out), "Failed to configure TLS") {
		t.Skipf("redis-server here has no TLS support (apt-get install redis-server gives one that has): %s", strings.TrimSpace(string(out)))
	}
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	port := FreePort(t)
	s := &TLSServer{TLSAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), CAFile: caFile}
	s.Server = StartServer(t, "--tls-port", strconv.Itoa(port), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", caFile, "--tls-auth-clients", "no")
	return s
}

// URL is the rediss:// address of the TLS port.
func (s *TLSServer) URL() string { return "rediss://" + s.TLSAddr + "/0" }

// writeTestPKI writes a CA and a server certificate for 127.0.0.1 and localhost, signed by it.
func writeTestPKI(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chatgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", leafDER), write("server.key", "EC PRIVATE KEY", keyDER)
}

// StartSentinel runs redis-server --sentinel on a free loopback port, monitoring master under name.
func StartSentinel(t testing.TB, master *Server, name string) string {
	t.Helper()
	dir := t.TempDir()
	port := FreePort(t)
	conf := filepath.Join(dir, "sentinel.conf") // Sentinel rewrites its file, so it must be its own
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %d 1\n", port, dir, name, "127.0.0.1", master.Port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Skipf("redis-server --sentinel cannot start here: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer sc.Close()
	testutil.EventuallyNoError(t, 10*time.Second, fmt.Sprintf("the sentinel on %s to report master %s", addr, name), func() error {
		select {
		case <-exited:
			t.Skipf("redis-server --sentinel exited at start (no Sentinel support here?): %s", out.String())
		default:
		}
		got, err := sc.GetMasterAddrByName(context.Background(), name).Result()
		if err == nil && (len(got) != 2 || got[1] != strconv.Itoa(master.Port)) {
			err = fmt.Errorf("it reports %v", got)
		}
		return err
	})
	return addr
}
