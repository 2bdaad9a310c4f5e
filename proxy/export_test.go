package proxy

// SampleMetrics runs one round of the per-upload metrics sampler now, so
// tests with a fake clock need not wait for its ticker.
func (s *Service) SampleMetrics() {
	s.metrics.stalled.Set(float64(s.metrics.series.sample()))
}
