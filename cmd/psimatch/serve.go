package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/psimatch/psimatch/internal/audit"
	"github.com/psimatch/psimatch/internal/decompress"
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/pginventory"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/normalize"
	"github.com/psimatch/psimatch/server"
	"github.com/urfave/cli/v2"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the platform's server: answer advertisers' matches against the eligible inventory",
		Description: `Reads the inventory through the purpose policy (only advertising-consented,
not opted-out identifiers are matchable), computes the epoch's set once and
caches it in the data directory, and serves the v1 API over HTTPS.
SIGHUP re-reads the inventory and the advertisers file; SIGINT/SIGTERM stop
gracefully.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "inventory", Usage: "the inventory `FILE` (.csv, .jsonl) or a postgres:// URL", Required: true},
			&cli.StringFlag{Name: "inventory-query", Value: pginventory.DefaultQuery, Usage: "the `SQL` that reads a PostgreSQL inventory (columns user_id, kind, value, purposes, opted_out)"},
			&cli.StringFlag{Name: "inventory-format", Usage: "`FORMAT` of an inventory file: csv or jsonl (default: from the extension)"},
			&cli.StringFlag{Name: "data-dir", Usage: "`DIR` for the master seed, cached sets, TLS files and the audit log", Required: true},
			&cli.StringFlag{Name: "advertisers", Usage: "the advertisers `FILE` (made by 'psimatch advertiser add')", Required: true},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8443", Usage: "`HOST:PORT` to listen on"},
			&cli.StringFlag{Name: "default-region", Usage: "ISO 3166 `REGION` of inventory phone numbers written without a country code"},
			&cli.StringFlag{Name: "tls-cert", Usage: "TLS certificate `FILE` (PEM); without it a self-signed one is made in DIR/tls"},
			&cli.StringFlag{Name: "tls-key", Usage: "TLS key `FILE` (PEM)"},
			&cli.BoolFlag{Name: "plaintext", Usage: "serve plain HTTP, only behind a TLS-terminating proxy"},
			&cli.DurationFlag{Name: "rotate", Value: 24 * time.Hour, Usage: "epoch length: the key and the set change this often"},
			&cli.DurationFlag{Name: "reload", Usage: "re-read the inventory this often (0: only on SIGHUP)"},
			&cli.StringFlag{Name: "suite", Value: "ristretto255", Usage: "OPRF suite: ristretto255 or p256"},
			&cli.BoolFlag{Name: "verifiable", Usage: "RFC 9497 verifiable mode: members-mode answers carry DLEQ proofs"},
			&cli.Uint64Flag{Name: "max-client-rows", Value: psi.DefaultMaxClientRows, Usage: "the largest advertiser list the set's truncation is sized for"},
			&cli.BoolFlag{Name: "quiet", Usage: "no progress bars"},
		},
		Action: func(c *cli.Context) error {
			tuneGC()
			opts := serveOptions{
				inventory: c.String("inventory"), format: c.String("inventory-format"), query: c.String("inventory-query"), dataDir: c.String("data-dir"),
				advertisers: c.String("advertisers"), listen: c.String("listen"), region: c.String("default-region"),
				tlsCert: c.String("tls-cert"), tlsKey: c.String("tls-key"), plaintext: c.Bool("plaintext"),
				rotate: c.Duration("rotate"), reload: c.Duration("reload"), suite: c.String("suite"),
				verifiable: c.Bool("verifiable"), maxClientRows: c.Uint64("max-client-rows"), quiet: c.Bool("quiet"),
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			rs, err := startServer(ctx, opts, c.App.ErrWriter, c.App.ErrWriter)
			if err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			var tick <-chan time.Time
			if opts.reload > 0 {
				t := time.NewTicker(opts.reload)
				defer t.Stop()
				tick = t.C
			}
			for {
				select {
				case <-ctx.Done():
					return rs.shutdown()
				case err := <-rs.errc:
					rs.shutdown()
					return withHint(err, exitFailure, "the server stopped; see the log above")
				case <-hup:
					rs.reload(ctx)
				case <-tick:
					rs.reload(ctx)
				}
			}
		},
	}
}

type serveOptions struct {
	inventory, format, query, dataDir, advertisers, listen, region string
	tlsCert, tlsKey                                                string
	plaintext                                                      bool
	rotate, reload                                                 time.Duration
	suite                                                          string
	verifiable                                                     bool
	maxClientRows                                                  uint64
	quiet                                                          bool
}

// runningServer is a started server: its URL, its TLS certificate file (for
// clients that must trust a self-signed one) and how to stop it.
type runningServer struct {
	url      string
	certFile string
	srv      *server.Server
	http     *http.Server
	dir      *store.Dir
	audit    *audit.Log
	log      *slog.Logger
	errc     chan error
	cancel   context.CancelFunc
}

// startServer opens the data directory, reads or builds the epoch's set,
// and starts listening. The log goes to logw, progress bars (on a terminal)
// to progw. The caller stops it with shutdown.
func startServer(ctx context.Context, o serveOptions, logw, progw io.Writer) (*runningServer, error) {
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	suite, err := psi.SuiteByName(o.suite, o.verifiable)
	if err != nil {
		return nil, usageError("--suite: want ristretto255 or p256")
	}
	policy, err := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}, DefaultRegion: o.region})
	if err != nil {
		return nil, usageError("%v", err)
	}
	open, err := inventoryOpener(o.inventory, o.format, o.query)
	if err != nil {
		return nil, err
	}
	dir, err := store.Open(o.dataDir)
	if err != nil {
		return nil, withHint(err, exitInput, "check --data-dir; only one server may use a data directory")
	}
	rs := &runningServer{dir: dir, log: log, errc: make(chan error, 1)}
	fail := func(err error) (*runningServer, error) {
		if rs.audit != nil {
			rs.audit.Close()
		}
		dir.Close()
		return nil, err
	}
	seed, created, err := dir.Seed()
	if err != nil {
		return fail(withHint(err, exitInput, "the master seed in --data-dir is unusable"))
	}
	if created {
		log.Info("created a new master seed", "path", dir.Path()+"/seed")
	}
	if rs.audit, err = audit.Open(dir.AuditPath()); err != nil {
		return fail(withHint(err, exitInput, "the audit log in --data-dir is unusable"))
	}
	bar := newProgress(progw, o.quiet)
	defer bar.done()
	precomputed, precomputeTotal := bar.counter("precompute platform set")
	srvCtx, cancel := context.WithCancel(context.Background())
	rs.cancel = cancel
	rs.srv, err = server.New(ctx, server.Config{
		Suite: suite, Seed: seed, Dir: dir, Audit: rs.audit, Advertisers: o.advertisers,
		OpenInventory: open, Policy: policy, Rotate: o.rotate, MaxClientRows: o.maxClientRows,
		Logger: log, Progress: precomputed, ProgressTotal: precomputeTotal,
	})
	bar.done()
	if err != nil {
		cancel()
		return fail(withHint(err, exitInput, "check --inventory and --advertisers"))
	}
	go rs.srv.Run(srvCtx)

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		cancel()
		return fail(withHint(err, exitUsage, "choose another --listen address"))
	}
	rs.http = &http.Server{
		Handler:           rs.srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		WriteTimeout:      10 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	scheme := "https"
	if o.plaintext {
		scheme = "http"
		log.Warn("SERVING PLAIN HTTP (--plaintext): tokens and elements cross the network unencrypted unless a TLS-terminating proxy is in front")
		go func() { rs.errc <- rs.http.Serve(ln) }()
	} else {
		certFile, keyFile := o.tlsCert, o.tlsKey
		if (certFile == "") != (keyFile == "") {
			cancel()
			ln.Close()
			return fail(usageError("--tls-cert and --tls-key go together"))
		}
		if certFile == "" {
			host, _, _ := net.SplitHostPort(ln.Addr().String())
			certFile, keyFile, created, err = dir.SelfSignedCert([]string{host})
			if err != nil {
				cancel()
				ln.Close()
				return fail(err)
			}
			log.Info("using a self-signed TLS certificate; give it to advertisers for --ca-cert", "path", certFile, "created", created)
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			cancel()
			ln.Close()
			return fail(withHint(err, exitInput, "check --tls-cert and --tls-key"))
		}
		rs.certFile = certFile
		rs.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		// ServeTLS (unlike Serve on a tls.Listener) also sets up HTTP/2.
		go func() { rs.errc <- rs.http.ServeTLS(ln, "", "") }()
	}
	rs.url = fmt.Sprintf("%s://%s", scheme, ln.Addr().String())
	log.Info("serving", "url", rs.url, "epoch", rs.srv.Epoch(), "set_size", rs.srv.SetSize(), "suite", suite.Name())
	return rs, nil
}

func (rs *runningServer) reload(ctx context.Context) {
	rs.log.Info("re-reading the inventory and the advertisers")
	if err := rs.srv.ReloadAdvertisers(); err != nil {
		rs.log.Error("re-reading the advertisers; the previous ones stay", "err", err)
	}
	if err := rs.srv.Reload(ctx); err != nil {
		rs.log.Error("re-reading the inventory; the previous set keeps serving", "err", err)
	}
}

// shutdown stops accepting, lets running requests finish (with a fresh
// timeout: the signal's context is already cancelled) and closes the files.
func (rs *runningServer) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := rs.http.Shutdown(ctx)
	rs.cancel()
	rs.audit.Close()
	rs.dir.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// inventoryOpener returns how the server opens its inventory for each read.
func inventoryOpener(spec, format, query string) (func(ctx context.Context) (inventory.Source, func() error, error), error) {
	if pginventory.IsConnString(spec) {
		if format != "" {
			return nil, usageError("--inventory-format applies to inventory files; --inventory names a PostgreSQL database")
		}
		// Each read (start, rotation, reload) runs the query again, so an
		// opt-out recorded in the database takes effect on the next session.
		return func(ctx context.Context) (inventory.Source, func() error, error) {
			return openDatabaseInventory(ctx, spec, query)
		}, nil
	}
	f, err := inventory.ParseFormat(format)
	if err != nil {
		return nil, usageError("--inventory-format: want csv or jsonl")
	}
	if f == inventory.Auto {
		if f, err = inventory.FormatOf(decompress.TrimExt(spec)); err != nil {
			return nil, withHint(err, exitUsage, "pass --inventory-format csv or jsonl")
		}
	}
	if _, err := os.Stat(spec); err != nil {
		return nil, withHint(err, exitInput, "check the path given to --inventory")
	}
	return func(context.Context) (inventory.Source, func() error, error) { return openInventoryFile(spec, f) }, nil
}
