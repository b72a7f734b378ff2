package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cofferhq/coffer/tlsutil"
	"github.com/spf13/cobra"
)

// File names, after Consul's consul-agent-ca.pem, consul-agent-ca-key.pem
// and dc1-server-consul-0.pem. Where Consul numbers a node's files, Coffer
// names the node, because the certificate names it too.
const (
	caCertFileName = "coffer-ca.pem"
	caKeyFileName  = "coffer-ca-key.pem"
)

func nodeCertFileName(region, node string) string { return region + "-server-" + node + ".pem" }
func nodeKeyFileName(region, node string) string  { return region + "-server-" + node + "-key.pem" }

// tlsCmd is `coffer operator tls`: the CA and node certificates for the
// cluster port's mutual TLS.
func tlsCmd() *cobra.Command {
	group := &cobra.Command{
		Use:   "tls",
		Short: "Create the CA and node certificates for the servers' mutual TLS",
		Long: `Create the certificates Coffer servers use, as 'consul tls' does for Consul:

  coffer operator tls ca create                                   like consul tls ca create
  coffer operator tls cert create --node n1 --region us-east-1    like consul tls cert create -server -dc dc1

A server's cluster port (Raft and internal RPC) is mutual TLS: each node
presents its certificate (--tls-cert-file, --tls-key-file) and accepts only
peers whose certificates the CA (--tls-ca-file) signed. The API port serves
HTTPS with the same certificate.

One CA can serve every region, as one Consul CA serves every datacenter. A
node certificate names its node and region, n1.server.us-east-1.coffer, and
also server.us-east-1.coffer, the name a node verifies when it dials a peer
of its region; the accepting node reads the dialer's region from its
certificate. So a server of another region, though signed by the same CA,
never joins the region's Raft.

Unlike Consul there is no -client or -cli certificate: every certificate is a
server's, and serves both ends of a connection (server and client
authentication). SIGHUP makes a server reload its CA, certificate and key.`,
	}
	ca := &cobra.Command{Use: "ca", Short: "Manage the certificate authority that signs node certificates"}
	ca.AddCommand(tlsCACreateCmd())
	cert := &cobra.Command{Use: "cert", Short: "Manage node certificates"}
	cert.AddCommand(tlsCertCreateCmd())
	group.AddCommand(ca, cert)
	return group
}

func tlsCACreateCmd() *cobra.Command {
	var outDir string
	var days int
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a CA: " + caCertFileName + " and " + caKeyFileName,
		Long: `Create a certificate authority in --out-dir, as 'consul tls ca create' does:

  ` + caCertFileName + `       the CA certificate (mode 0644); give it to every server as --tls-ca-file
  ` + caKeyFileName + `   its private key (mode 0600)

The key is ECDSA P-256. The CA signs node certificates only, not intermediate
CAs, and its name carries a random id ("Coffer CA 1f2e3d4c"), so two CAs are
told apart in logs and in 'openssl x509 -text'.

Keep the CA key off the servers: it is needed only to sign node certificates
('coffer operator tls cert create'), and whoever holds it can make a
certificate for any node of any region.

To replace the CA, create the new one in another directory, give the servers
a --tls-ca-file holding both CA certificates (concatenate them) and send
SIGHUP, issue new node certificates from the new CA, and finally drop the
old CA from the file.

The command refuses to overwrite either file.`,
		Example: `  coffer operator tls ca create
  coffer operator tls ca create --out-dir /secure/coffer-ca --days 3650`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return fmt.Errorf("--days must be at least 1, got %d", days)
			}
			certPEM, keyPEM, err := tlsutil.CreateCA(tlsutil.CAOptions{Days: days})
			if err != nil {
				return err
			}
			certPath, keyPath := filepath.Join(outDir, caCertFileName), filepath.Join(outDir, caKeyFileName)
			if err := writeNewFiles(
				newFile{certPath, certPEM, 0o644},
				newFile{keyPath, keyPEM, 0o600},
			); err != nil {
				return err
			}
			c, err := parseCertPEM(certPEM)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "==> Saved %s\n==> Saved %s\n", certPath, keyPath)
			fmt.Fprintf(out, "CA %q, valid until %s\n", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&outDir, "out-dir", ".", "directory to write "+caCertFileName+" and "+caKeyFileName+" into (it must exist)")
	fl.IntVar(&days, "days", tlsutil.DefaultCADays, "number of days the CA is valid")
	return cmd
}

func tlsCertCreateCmd() *cobra.Command {
	var (
		node, region, caFile, caKeyFile, outDir string
		days                                    int
		dnsNames, ipAddrs                       []string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a node certificate and key, signed by the CA",
		Long: `Create a certificate and key for one server, signed by the CA, in --out-dir,
as 'consul tls cert create -server -dc <dc>' does:

  <region>-server-<node>.pem       the certificate; give it to the server as --tls-cert-file
  <region>-server-<node>-key.pem   its private key (mode 0600); --tls-key-file

Give the node id and region the server runs with (its --node-id and
--region): the server refuses a certificate made for another node or region.
Both must be DNS labels: lowercase letters, digits and '-'.

The certificate names:

  DNS  <node>.server.<region>.coffer   this node; peers read its node and region from it
       server.<region>.coffer          any server of the region; what a dialing node verifies
       localhost, and each --additional-dnsname
  IP   127.0.0.1, ::1, and each --additional-ipaddress

It allows server and client authentication: the node accepts and dials with
it. The API port serves it too, so add the names and addresses that API
clients use to reach this server. Names under .coffer cannot be added.

The key is ECDSA P-256. The certificate is valid for --days, which must end
before the CA does. To renew, create a new certificate in another directory,
move it and its key over the old files, and send the server SIGHUP.

The command refuses to overwrite either file.`,
		Example: `  coffer operator tls cert create --node n1 --region us-east-1
  coffer operator tls cert create --node n2 --region us-east-1 \
      --ca /secure/coffer-ca/coffer-ca.pem --ca-key /secure/coffer-ca/coffer-ca-key.pem \
      --additional-dnsname coffer.example.com --additional-ipaddress 10.0.0.2`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case node == "":
				return errors.New("--node is required")
			case region == "":
				return errors.New("--region is required")
			case days < 1:
				return fmt.Errorf("--days must be at least 1, got %d", days)
			}
			var ips []net.IP
			for _, s := range ipAddrs {
				ip := net.ParseIP(strings.TrimSpace(s))
				if ip == nil {
					return fmt.Errorf("--additional-ipaddress: %q is not an IP address", s)
				}
				ips = append(ips, ip)
			}
			caPEM, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			caKeyPEM, err := os.ReadFile(caKeyFile)
			if err != nil {
				return fmt.Errorf("--ca-key: %w", err)
			}
			certPEM, keyPEM, err := tlsutil.CreateNodeCert(caPEM, caKeyPEM, tlsutil.NodeCertOptions{
				Node: node, Region: region, Days: days, DNSNames: dnsNames, IPs: ips,
			})
			if err != nil {
				return err
			}
			c, err := parseCertPEM(certPEM)
			if err != nil {
				return err
			}
			certPath := filepath.Join(outDir, nodeCertFileName(region, node))
			keyPath := filepath.Join(outDir, nodeKeyFileName(region, node))
			if err := writeNewFiles(
				newFile{certPath, certPEM, 0o644},
				newFile{keyPath, keyPEM, 0o600},
			); err != nil {
				return err
			}
			ipStrs := make([]string, len(c.IPAddresses))
			for i, ip := range c.IPAddresses {
				ipStrs[i] = ip.String()
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "==> Using %s and %s\n==> Saved %s\n==> Saved %s\n", caFile, caKeyFile, certPath, keyPath)
			fmt.Fprintf(out, "Node %s of region %s, valid until %s\n", node, region, c.NotAfter.UTC().Format(time.RFC3339))
			fmt.Fprintf(out, "  DNS names:    %s\n  IP addresses: %s\n", strings.Join(c.DNSNames, ", "), strings.Join(ipStrs, ", "))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&node, "node", "", "node id, as the server's --node-id (required)")
	fl.StringVar(&region, "region", "", "region of the node, as the server's --region, e.g. us-east-1 (required)")
	fl.StringVar(&caFile, "ca", caCertFileName, "CA certificate file ('coffer operator tls ca create')")
	fl.StringVar(&caKeyFile, "ca-key", caKeyFileName, "CA private key file")
	fl.StringVar(&outDir, "out-dir", ".", "directory to write the certificate and key into (it must exist)")
	fl.IntVar(&days, "days", tlsutil.DefaultCertDays, "number of days the certificate is valid")
	fl.StringSliceVar(&dnsNames, "additional-dnsname", nil, "extra DNS name for the certificate, e.g. the API's load balancer; repeat the flag or separate with commas")
	fl.StringSliceVar(&ipAddrs, "additional-ipaddress", nil, "extra IP address for the certificate, e.g. the node's own; repeat the flag or separate with commas")
	return cmd
}

// newFile is one file for writeNewFiles.
type newFile struct {
	path string
	data []byte
	mode os.FileMode
}

// writeNewFiles creates the files in order and never overwrites one. If any
// fails, it removes those it created, so a failed run leaves no half pair
// behind (a certificate without its key, or a key nobody can identify).
func writeNewFiles(files ...newFile) error {
	var created []string
	for _, f := range files {
		if err := writeNewFile(f); err != nil {
			for _, p := range created {
				os.Remove(p)
			}
			return err
		}
		created = append(created, f.path)
	}
	return nil
}

func writeNewFile(f newFile) error {
	// O_EXCL: refuse an existing file atomically, even one created a
	// moment ago by another run.
	fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; not overwriting it (move it away, or choose another --out-dir)", f.path)
	}
	if err != nil {
		return err
	}
	if _, err := fh.Write(f.data); err != nil {
		fh.Close()
		os.Remove(f.path)
		return err
	}
	if err := fh.Close(); err != nil {
		os.Remove(f.path)
		return err
	}
	return nil
}

// parseCertPEM parses a certificate just created, to report what it says.
func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}
