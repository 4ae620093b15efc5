package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own (no
// global state). No label ever carries an identifier.
type metrics struct {
	reg      *prometheus.Registry
	sessions *prometheus.CounterVec
	elements *prometheus.CounterVec
	refusals *prometheus.CounterVec
	setSize  prometheus.Gauge
	epochAge func() float64
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.sessions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "psimatch_sessions_total", Help: "Sessions opened, by mode."}, []string{"mode"})
	m.elements = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "psimatch_elements_evaluated_total", Help: "Blinded elements evaluated, by mode."}, []string{"mode"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "psimatch_refusals_total", Help: "Requests refused, by reason."}, []string{"reason"})
	m.setSize = prometheus.NewGauge(prometheus.GaugeOpts{Name: "psimatch_set_size", Help: "Identifiers in the current epoch's matchable set."})
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "psimatch_epoch_age_seconds", Help: "Seconds since the current epoch began."}, func() float64 {
		if m.epochAge == nil {
			return 0
		}
		return m.epochAge()
	})
	m.reg.MustRegister(m.sessions, m.elements, m.refusals, m.setSize, age)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// MetricsHandler returns the Prometheus metrics handler. It is not part of
// Handler: serve it on a listener of its own (psimatch serve
// --metrics-listen, loopback by default), so that whoever can reach the API
// cannot read the platform's traffic figures.
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler() }
