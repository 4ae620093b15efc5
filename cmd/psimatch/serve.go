package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/psimatch/psimatch/internal/audit"
	"github.com/psimatch/psimatch/internal/state"
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/pginventory"
	"github.com/psimatch/psimatch/protocol"
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
		Description: `Reads the inventory through the purpose policy (deny wins, by value and by
user: only advertising-consented identifiers that no record denies are
matchable), computes the epoch's set and caches it in the data directory,
and serves the v1 API over HTTPS. Every start, every --reload interval and
every rotation re-read the inventory; the cached set is reused only when the
eligible set's fingerprint is unchanged, else it is rebuilt under a new key.
SIGHUP re-reads the inventory and the advertisers file (which is also
checked for changes every 10s); SIGINT/SIGTERM stop gracefully.

Sessions and budget usage are kept durably in DIR/state.jsonl, or with
--state in a PostgreSQL database that several replicas share; replicas also
share --seed-file and read the same inventory. /metrics is served on
--metrics-listen only, never on the API's address.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "inventory", Usage: "the inventory `FILE` (.csv, .jsonl) or a postgres:// URL", Required: true},
			&cli.StringFlag{Name: "inventory-query", Value: pginventory.DefaultQuery, Usage: "the `SQL` that reads a PostgreSQL inventory (columns user_id, kind, value, purposes, opted_out)"},
			&cli.StringFlag{Name: "inventory-format", Aliases: []string{"format"}, Usage: "`FORMAT` of an inventory file: csv or jsonl (default: from the extension)"},
			&cli.StringFlag{Name: "data-dir", Usage: "`DIR` for the master seed, cached sets, TLS files and the audit log", Required: true},
			&cli.StringFlag{Name: "advertisers", Usage: "the advertisers `FILE` (made by 'psimatch advertiser add')", Required: true},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8443", Usage: "`HOST:PORT` to listen on"},
			&cli.StringFlag{Name: "default-region", Usage: "ISO 3166 `REGION` of inventory phone numbers written without a country code"},
			&cli.StringFlag{Name: "tls-cert", Usage: "TLS certificate `FILE` (PEM); without it a self-signed one is made in DIR/tls"},
			&cli.StringFlag{Name: "tls-key", Usage: "TLS key `FILE` (PEM)"},
			&cli.StringSliceFlag{Name: "tls-host", Usage: "a `NAME` or address advertisers use to reach this server, added to the self-signed certificate (repeatable)"},
			&cli.BoolFlag{Name: "plaintext", Usage: "serve plain HTTP, only behind a TLS-terminating proxy"},
			&cli.DurationFlag{Name: "rotate", Value: 24 * time.Hour, Usage: "epoch length: the key and the set change this often"},
			&cli.DurationFlag{Name: "reload", Value: 10 * time.Minute, Usage: "re-read the inventory this often, so an opt-out reaches the next session within this interval (0: only at start, rotation and SIGHUP)"},
			&cli.StringFlag{Name: "suite", Value: "ristretto255", Usage: "OPRF suite: ristretto255 or p256"},
			&cli.BoolFlag{Name: "verifiable", Usage: "RFC 9497 verifiable mode: members- and estimate-mode answers carry DLEQ proofs"},
			&cli.Uint64Flag{Name: "max-client-rows", Value: psi.DefaultMaxClientRows, Usage: "the largest advertiser list the set's truncation is sized for"},
			&cli.BoolFlag{Name: "quiet", Usage: "no progress bars"},
			&cli.StringFlag{Name: "state", Usage: "keep sessions and budgets in this PostgreSQL database (a postgres:// `URL` or \"host=... dbname=...\"), shared by replicas; default: the data directory"},
			&cli.StringFlag{Name: "seed-file", Usage: "the master seed `FILE` (32 bytes, mode 0600, owned by the server's user) shared by replicas; default: DIR/seed, made on first start"},
			&cli.StringFlag{Name: "metrics-listen", Value: "127.0.0.1:9464", Usage: "`HOST:PORT` of the Prometheus /metrics listener, apart from the API (empty: none)"},
			&cli.Float64Flag{Name: "estimate-epsilon", Value: psi.DefaultEstimateEpsilon, Usage: "estimate mode's ε per identifier (default ln 3): what a deviating client can learn about one identifier; p follows with d = 1/4. Changing it re-keys estimate mode, which spends ε again"},
			&cli.UintFlag{Name: "estimate-bits", Usage: "pin estimate mode's L (12..32); 0 keeps the data directory's, or chooses ceil(log2(eligible/d))+1 at the first build. Replicas with separate data directories must pin the same value"},
			&cli.UintFlag{Name: "estimate-key-version", Value: 1, Usage: "re-key estimate mode by raising this: new randomness, which spends ε again"},
		},
		Action: func(c *cli.Context) error {
			tuneGC()
			est := server.EstimateConfig{Epsilon: c.Float64("estimate-epsilon"), Bits: c.Uint("estimate-bits"), Version: c.Uint("estimate-key-version")}
			if _, err := psi.NewEstimateParams(est.Epsilon, 0, est.Bits, est.Version); err != nil || est.Version == 0 {
				return usageError("--estimate-epsilon must be 0.05..5, --estimate-bits 0 or 12..32, --estimate-key-version at least 1")
			}
			opts := serveOptions{
				estimate:  est,
				inventory: c.String("inventory"), format: c.String("inventory-format"), query: c.String("inventory-query"), dataDir: c.String("data-dir"),
				advertisers: c.String("advertisers"), listen: c.String("listen"), region: c.String("default-region"),
				tlsCert: c.String("tls-cert"), tlsKey: c.String("tls-key"), tlsHosts: c.StringSlice("tls-host"), plaintext: c.Bool("plaintext"),
				rotate: c.Duration("rotate"), reload: c.Duration("reload"), suite: c.String("suite"),
				verifiable: c.Bool("verifiable"), maxClientRows: c.Uint64("max-client-rows"), quiet: c.Bool("quiet"),
				state: c.String("state"), seedFile: c.String("seed-file"), metricsListen: c.String("metrics-listen"),
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
	tlsHosts                                                       []string
	plaintext                                                      bool
	rotate, reload                                                 time.Duration
	suite                                                          string
	verifiable                                                     bool
	maxClientRows                                                  uint64
	quiet                                                          bool
	// state is the --state database ("" for the data directory's journal),
	// seedFile the shared seed ("" for DIR/seed), metricsListen the
	// /metrics address ("" for none).
	state, seedFile, metricsListen string
	estimate                       server.EstimateConfig
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
	state    state.Store
	metrics  *http.Server
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
	open, err := openInventory(inventorySpec{spec: o.inventory, format: o.format, formatFlag: "--inventory-format", query: o.query})
	if err != nil {
		return nil, err
	}
	dir, err := store.Open(o.dataDir)
	if err != nil {
		return nil, withHint(err, exitInput, "check --data-dir; only one server may use a data directory")
	}
	rs := &runningServer{dir: dir, log: log, errc: make(chan error, 1)}
	// Bind the port and load the certificate before reading the inventory.
	l, err := listen(o, dir, log)
	if err != nil {
		dir.Close()
		return nil, err
	}
	ln := l.ln
	fail := func(err error) (*runningServer, error) {
		if rs.audit != nil {
			rs.audit.Close()
		}
		if rs.state != nil {
			rs.state.Close()
		}
		l.Close()
		dir.Close()
		return nil, err
	}
	var seed []byte
	sharedSeed := o.seedFile != ""
	if sharedSeed {
		// Replicas derive each epoch's secret from the shared seed directly,
		// so they agree without coordinating; forward secrecy then rests on
		// the operator rotating the file (SECURITY.md).
		if seed, err = store.ReadSeedFile(o.seedFile); err != nil {
			return fail(withHint(err, exitInput, "--seed-file must be 32 bytes, mode 0600, owned by the user running the server; give every replica the same file"))
		}
	} else {
		// The master seed only starts the epoch-key ratchet; once the data
		// directory holds the ratchet's anchor, the seed is not read (and is
		// erased below), so a stolen directory cannot recompute earlier epochs.
		_, hasAnchor, err := dir.LoadAnchor()
		if err != nil {
			return fail(withHint(err, exitInput, "the epoch-key ratchet in --data-dir is unusable"))
		}
		if !hasAnchor {
			var created bool
			if seed, created, err = dir.Seed(); err != nil {
				return fail(withHint(err, exitInput, "the master seed in --data-dir is unusable"))
			}
			if created {
				log.Info("created a new master seed", "path", dir.Path()+"/seed")
			}
		}
	}
	if rs.state, err = openState(ctx, o.state, dir); err != nil {
		return fail(err)
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
		Suite: suite, Seed: seed, SharedSeed: sharedSeed, Dir: dir, Audit: rs.audit, Advertisers: o.advertisers,
		OpenInventory: open, Policy: policy, Rotate: o.rotate, MaxClientRows: o.maxClientRows,
		Logger: log, Progress: precomputed, ProgressTotal: precomputeTotal, State: rs.state, Estimate: o.estimate,
	})
	bar.done()
	if err != nil {
		cancel()
		return fail(withHint(err, exitInput, "check --inventory and --advertisers"))
	}
	if !sharedSeed {
		clear(seed)
	}
	if !sharedSeed && dir.HasSeed() {
		if err := dir.EraseSeed(); err != nil {
			log.Warn("could not erase the master seed from the data directory", "err", err)
		} else {
			log.Info("erased the master seed from the data directory: the epoch-key ratchet (DIR/ratchet) replaces it")
		}
	}
	go rs.srv.Run(srvCtx)

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
		rs.certFile = l.certFile
		rs.http.TLSConfig = l.tls
		// ServeTLS (unlike Serve on a tls.Listener) also sets up HTTP/2.
		go func() { rs.errc <- rs.http.ServeTLS(ln, "", "") }()
	}
	if mln := l.metrics; mln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET "+protocol.PathMetrics, rs.srv.MetricsHandler())
		rs.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		go rs.metrics.Serve(mln)
		log.Info("metrics", "url", "http://"+mln.Addr().String()+"/metrics")
	}
	rs.url = fmt.Sprintf("%s://%s", scheme, ln.Addr().String())
	log.Info("serving", "url", rs.url, "epoch", rs.srv.Epoch(), "set_size", rs.srv.SetSize(), "suite", suite.Name())
	return rs, nil
}

func (rs *runningServer) reload(ctx context.Context) {
	rs.log.Info("re-reading the inventory and the advertisers")
	if err := rs.srv.ReloadAdvertisers(); err != nil {
		rs.log.Error("re-reading the advertisers; the previous ones stay", "err", err)
	} else {
		rs.log.Info("advertisers reloaded")
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
	if rs.metrics != nil {
		rs.metrics.Close()
	}
	rs.cancel()
	rs.srv.Close()
	rs.state.Close()
	rs.audit.Close()
	rs.dir.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
