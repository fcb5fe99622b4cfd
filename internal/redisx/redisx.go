// Package redisx opens the one Redis client a process shares (with asynq too), or an embedded
// in-memory Redis when none is configured, and watches whether it can be reached.
package redisx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
)

// Store is an open Redis client and what must be stopped with it.
type Store struct {
	Client   redis.UniversalClient
	Embedded bool
	mini     *miniredis.Miniredis
	stop     chan struct{}
	wg       sync.WaitGroup
}

// Open connects to the configured Redis, or starts the embedded store when none is configured.
func Open(ctx context.Context, cfg configs.Redis, logger *slog.Logger) (*Store, error) {
	UseLogger(logger)
	if cfg.Embedded() {
		return openEmbedded(logger)
	}
	opts, err := universalOptions(cfg)
	if err != nil {
		return nil, err
	}
	client := redis.NewUniversalClient(opts)
	s := &Store{Client: client}
	pingCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		// Not fatal: readiness reports it and the process recovers when Redis comes back.
		logger.Warn("redis is not reachable yet", "err", err)
	}
	return s, nil
}

func universalOptions(cfg configs.Redis) (*redis.UniversalOptions, error) {
	opts := &redis.UniversalOptions{
		Addrs:      cfg.Addrs,
		MasterName: cfg.MasterName,
		Username:   cfg.Username,
		Password:   cfg.Password,
		PoolSize:   cfg.PoolSize,
		// RESP2: nothing here uses a RESP3 feature (push messages, client-side caching), and on RESP3
		// go-redis looks for push messages before every reply, about 2% of the webhook path's CPU.
		Protocol: 2,
		// Fail fast while Redis is away so webhooks answer 503 promptly instead of hanging.
		DialTimeout:  2 * time.Second,
		ReadTimeout:  3 * time.Second,
		WriteTimeout: 3 * time.Second,
		PoolTimeout:  4 * time.Second,
		MaxRetries:   1,
		// One dial attempt per command: while Redis is away the answer is a prompt 503, not a wait.
		DialerRetries:      1,
		DialerRetryTimeout: 50 * time.Millisecond,
	}
	if cfg.URL != "" {
		u, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		opts.Addrs = []string{u.Addr}
		opts.DB = u.DB
		opts.TLSConfig = u.TLSConfig
		if u.Username != "" {
			opts.Username = u.Username
		}
		if u.Password != "" {
			opts.Password = u.Password
		}
	}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls_ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls_ca_file: %s holds no PEM certificate", cfg.TLSCAFile)
		}
		if opts.TLSConfig == nil { // addrs (cluster, Sentinel) have no scheme: the CA file asks for TLS
			opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		opts.TLSConfig.RootCAs = roots
	}
	if opts.TLSConfig == nil { // go-redis never checks TLS connections (it cannot peek under TLS)
		opts.Dialer = recentDialer(opts.DialTimeout)
	}
	return opts, nil
}

// openEmbedded serves a miniredis on loopback. Its TTLs only count down when FastForward is called,
// so a ticker drives it with the real elapsed time.
func openEmbedded(logger *slog.Logger) (*Store, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	logger.Warn("EMBEDDED IN-MEMORY REDIS: nothing is kept across restarts and only this one process can use it; " +
		"configure redis.url (CHATGATE_REDIS_URL) for anything but development")
	s := &Store{
		Client:   redis.NewClient(&redis.Options{Addr: m.Addr(), DialTimeout: time.Second}),
		Embedded: true,
		mini:     m,
		stop:     make(chan struct{}),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-s.stop:
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				m.SetTime(now)
				last = now
			}
		}
	}()
	return s, nil
}

// Close closes the client and stops the embedded store; call it last in shutdown.
func (s *Store) Close() error {
	err := s.Client.Close()
	if s.mini != nil {
		close(s.stop)
		s.wg.Wait()
		s.mini.Close()
	}
	return err
}

// IsUnavailable reports whether err means Redis could not be reached (as opposed to a script or data
// error): such requests are answered 503 so that callers retry.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	switch {
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &netErr):
		return true
	}
	// Redis's own answer may come wrapped (a script's name, the caller's step): look at each layer.
	for e := err; e != nil; e = errors.Unwrap(e) {
		msg := e.Error()
		if strings.HasPrefix(msg, "LOADING") || strings.HasPrefix(msg, "CLUSTERDOWN") ||
			strings.HasPrefix(msg, "TRYAGAIN") || strings.HasPrefix(msg, "MASTERDOWN") || strings.HasPrefix(msg, "READONLY") {
			return true
		}
	}
	return false
}
