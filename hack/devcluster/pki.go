package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certSpec is one certificate the cluster needs, signed by its CA.
type certSpec struct {
	name   string // file name stem under pki/
	cn     string
	org    []string
	ips    []net.IP
	dns    []string
	server bool
	client bool
}

// pki is the cluster's certificate authority and the files it signed.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

// ensurePKI loads the CA in dir or makes one, then makes every cert in specs
// that is missing, and the service-account key pair. Existing files are
// kept, so that restarting the cluster keeps issued tokens valid.
func ensurePKI(dir string, specs []certSpec) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{dir: dir}
	if err := p.loadOrMakeCA(); err != nil {
		return nil, err
	}
	for _, s := range specs {
		if exists(p.path(s.name + ".crt")) {
			continue
		}
		if err := p.issue(s); err != nil {
			return nil, fmt.Errorf("issuing %s certificate: %w", s.name, err)
		}
	}
	if !exists(p.path("sa.key")) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := writeKey(p.path("sa.key"), k); err != nil {
			return nil, err
		}
		pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(p.path("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *pki) loadOrMakeCA() error {
	if exists(p.path("ca.crt")) {
		certPEM, err := os.ReadFile(p.path("ca.crt"))
		if err != nil {
			return err
		}
		keyPEM, err := os.ReadFile(p.path("ca.key"))
		if err != nil {
			return err
		}
		cb, _ := pem.Decode(certPEM)
		kb, _ := pem.Decode(keyPEM)
		if cb == nil || kb == nil {
			return fmt.Errorf("%s: not PEM; remove %s to start over", p.dir, p.dir)
		}
		if p.caCert, err = x509.ParseCertificate(cb.Bytes); err != nil {
			return fmt.Errorf("parsing %s: %w", p.path("ca.crt"), err)
		}
		if p.caKey, err = x509.ParseECPrivateKey(kb.Bytes); err != nil {
			return fmt.Errorf("parsing %s: %w", p.path("ca.key"), err)
		}
		return nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kubepool-devcluster-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	if p.caCert, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	p.caKey = k
	if err := writeKey(p.path("ca.key"), k); err != nil {
		return err
	}
	return os.WriteFile(p.path("ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func (p *pki) issue(s certSpec) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: s.cn, Organization: s.org},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		IPAddresses:  s.ips,
		DNSNames:     s.dns,
	}
	if s.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if s.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &k.PublicKey, p.caKey)
	if err != nil {
		return err
	}
	if err := writeKey(p.path(s.name+".key"), k); err != nil {
		return err
	}
	return os.WriteFile(p.path(s.name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
