package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// workload is one of the measurements.
type workload int

const (
	single     workload = iota // one large upload in one PATCH
	chunked                    // one large upload in fixed-size PATCHes
	concurrent                 // many uploads at once
	creations                  // tus creations at a target rate
	heads                      // HEAD latency
	slow                       // many uploads held open at once, each trickling
)

var allWorkloads = []workload{single, chunked, concurrent, creations, heads, slow}

// key is the workload's name for -only and for upload filenames.
func (w workload) key() string {
	return [...]string{"single", "chunked", "concurrent", "create", "head", "slow"}[w]
}

// sizes are the dimensions of the workloads.
type sizes struct {
	single            int64 // bytes of the one-PATCH upload
	chunked, chunk    int64 // bytes of the chunked upload and of each PATCH
	uploads           int   // concurrent uploads
	uploadSize        int64 // bytes of each concurrent upload
	createRate        int   // creations per second aimed at
	createFor         time.Duration
	heads             int   // HEAD requests measured
	headUploads       int   // uploads they go round
	headPrefix        int64 // bytes uploaded before the HEADs
	createdSize       int64 // Upload-Length of the creations workload
	creationsInFlight int   // cap on creations waiting for an answer

	slowUploads int           // slow uploads held open at once
	slowRate    int64         // bytes per second each slow upload sends
	slowWrite   int64         // bytes per write of a slow upload
	slowOpening int           // slow uploads opened per second
	slowPlateau time.Duration // how long all of them are open at once
	slowSample  time.Duration // how often the hop's RSS is sampled meanwhile
}

// fullSizes are the workloads.
func fullSizes() sizes {
	return sizes{
		single: 1 << 30, chunked: 1 << 30, chunk: 8 << 20,
		uploads: 200, uploadSize: 16 << 20,
		createRate: 2000, createFor: 10 * time.Second,
		heads: 2000, headUploads: 20, headPrefix: 256 << 10,
		createdSize: 1 << 20, creationsInFlight: 512,
		slowUploads: 10000, slowRate: 16 << 10, slowWrite: 4 << 10, slowOpening: 500, slowPlateau: 15 * time.Second,
		slowSample: 100 * time.Millisecond,
	}
}

// quickSizes prove in seconds that every workload still runs.
func quickSizes() sizes {
	return sizes{
		single: 32 << 20, chunked: 16 << 20, chunk: 1 << 20,
		uploads: 20, uploadSize: 1 << 20,
		createRate: 200, createFor: 500 * time.Millisecond,
		heads: 20, headUploads: 3, headPrefix: 64 << 10,
		createdSize: 1 << 20, creationsInFlight: 64,
		// Opened at 100/s, so that the quarters of them open are sampled.
		slowUploads: 50, slowRate: 64 << 10, slowWrite: 4 << 10, slowOpening: 100, slowPlateau: 500 * time.Millisecond,
		slowSample: 20 * time.Millisecond,
	}
}

// slowSize is the size of slow upload i. Upload i opens at i/slowOpening
// seconds; its size makes it end, at slowRate, slowPlateau after the last
// one opened, so that all of them end together: the run lasts the ramp plus
// the plateau, not twice the ramp. Sizes are whole writes.
func (sz sizes) slowSize(i int) int64 {
	ramp := time.Duration(sz.slowUploads) * time.Second / time.Duration(sz.slowOpening)
	opensAt := time.Duration(i) * time.Second / time.Duration(sz.slowOpening)
	lasts := ramp - opensAt + sz.slowPlateau
	writes := (int64(lasts.Seconds()*float64(sz.slowRate)) + sz.slowWrite - 1) / sz.slowWrite
	return max(writes, 1) * sz.slowWrite
}

// Seeds of the payloads. Uploads that are in flight at the same time have
// different seeds; the same seed is reused across targets and repetitions,
// so each expected hash is computed once.
const (
	seedLarge      = 1    // the single and chunked uploads
	seedConcurrent = 1000 // + the upload's index
	seedHead       = 5000 // + the upload's index
	seedSlow       = 1e6  // + the upload's index
)

func (sz sizes) payloadKeys(run map[workload]bool) []payloadKey {
	var keys []payloadKey
	if run[single] {
		keys = append(keys, payloadKey{seedLarge, sz.single})
	}
	if run[chunked] {
		keys = append(keys, payloadKey{seedLarge, sz.chunked})
	}
	if run[concurrent] {
		for i := range sz.uploads {
			keys = append(keys, payloadKey{seedConcurrent + uint64(i), sz.uploadSize})
		}
	}
	if run[heads] {
		for i := range sz.headUploads {
			keys = append(keys, payloadKey{seedHead + uint64(i), sz.headPrefix})
		}
	}
	if run[slow] {
		for i := range sz.slowUploads {
			keys = append(keys, payloadKey{seedSlow + uint64(i), sz.slowSize(i)})
		}
	}
	return keys
}

// result is one workload run against one target.
type result struct {
	bytes     int64           // upload bytes moved in the measured window
	elapsed   time.Duration   // the measured window
	latencies []time.Duration // per PATCH, per creation or per HEAD
	succeeded int             // creations answered 201
	late      int             // creations sent late because too many were waiting

	hopCPU, emulatorCPU time.Duration // CPU time spent in the window
	clientCPU           time.Duration // the bench process's own CPU time in the window
	machineCPU          time.Duration // CPU time of the whole machine in the window
	rssBase, rssPeak    int64         // hop's VmRSS before, and its VmHWM after, the window
	inFlightPeak        int           // most PATCHes in flight at once

	// The slow uploads: how many were opened and failed, and the hop's
	// VmRSS sampled as they opened.
	opened, failed int
	rssSamples     []rssSample
}

// rssSample is the hop's VmRSS with open uploads open.
type rssSample struct {
	open int
	rss  int64
}

// perUpload is the hop's RSS above base (before the workload) per upload
// open at the sample, in bytes.
func (s rssSample) perUpload(base int64) float64 {
	return float64(s.rss-base) / float64(s.open)
}

// otherLoad is the share of the machine's CPU that processes other than the
// client, the hop and the emulator used during the measured window.
func (r result) otherLoad() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	other := max(r.machineCPU-r.clientCPU-r.hopCPU-r.emulatorCPU, 0)
	return other.Seconds() / (r.elapsed.Seconds() * float64(runtime.NumCPU()))
}

// meter reads the CPU time of the hop and the emulator around the measured
// window of a workload (setup, such as creating 200 uploads, is outside it).
type meter struct {
	b                 *bench
	t                 *target
	res               *result
	hop, emul, client procStat
	machine           time.Duration
}

func (m *meter) start() {
	if m.t.hop != nil {
		m.hop, _ = m.t.hop.usage()
	}
	m.emul, _ = readProc(m.b.emulator.pid())
	m.client, _ = readProc(os.Getpid())
	m.machine, _ = machineCPU()
}

func (m *meter) stop() {
	if m.t.hop != nil {
		if st, err := m.t.hop.usage(); err == nil {
			m.res.hopCPU = st.cpu - m.hop.cpu
		}
	}
	if st, err := readProc(m.b.emulator.pid()); err == nil {
		m.res.emulatorCPU = st.cpu - m.emul.cpu
	}
	if st, err := readProc(os.Getpid()); err == nil {
		m.res.clientCPU = st.cpu - m.client.cpu
	}
	if total, err := machineCPU(); err == nil {
		m.res.machineCPU = total - m.machine
	}
}

// run runs workload w once against t.
// attempt names the run in upload filenames, which must be unique.
func (b *bench) run(ctx context.Context, w workload, t *target, attempt string) (result, error) {
	var res result
	m := &meter{b: b, t: t, res: &res}
	name := fmt.Sprintf("%s-%s-%s", w.key(), t.kind.key(), attempt)
	var err error
	switch w {
	case single:
		err = b.runSingle(ctx, t, m, name)
	case chunked:
		err = b.runChunked(ctx, t, m, name)
	case concurrent:
		err = b.runConcurrent(ctx, t, m, name)
	case creations:
		err = b.runCreations(ctx, t, m, name)
	case heads:
		err = b.runHeads(ctx, t, m, name)
	case slow:
		err = b.runSlow(ctx, t, m, name)
	}
	return res, err
}

func (b *bench) runSingle(ctx context.Context, t *target, m *meter, name string) error {
	size := b.sz.single
	uploadURL, err := t.create(ctx, size, name)
	if err != nil {
		return err
	}
	m.start()
	began := time.Now()
	offset, err := t.patch(ctx, uploadURL, 0, newPayload(seedLarge, 0, size))
	elapsed := time.Since(began)
	m.stop()
	if err != nil {
		return err
	}
	if offset != size {
		return fmt.Errorf("PATCH answered offset %d, want %d", offset, size)
	}
	m.res.bytes, m.res.elapsed, m.res.latencies = size, elapsed, []time.Duration{elapsed}
	return b.verify(ctx, name, payloadKey{seedLarge, size})
}

func (b *bench) runChunked(ctx context.Context, t *target, m *meter, name string) error {
	size := b.sz.chunked
	uploadURL, err := t.create(ctx, size, name)
	if err != nil {
		return err
	}
	m.start()
	began := time.Now()
	var offset int64
	for offset < size {
		end := min(offset+b.sz.chunk, size)
		sent := time.Now()
		newOffset, err := t.patch(ctx, uploadURL, offset, newPayload(seedLarge, offset, end))
		if err != nil {
			m.stop()
			return err
		}
		m.res.latencies = append(m.res.latencies, time.Since(sent))
		if newOffset != end {
			m.stop()
			return fmt.Errorf("PATCH answered offset %d, want %d", newOffset, end)
		}
		offset = newOffset
	}
	m.res.elapsed = time.Since(began)
	m.stop()
	m.res.bytes = size
	return b.verify(ctx, name, payloadKey{seedLarge, size})
}

func (b *bench) runConcurrent(ctx context.Context, t *target, m *meter, name string) error {
	n, size := b.sz.uploads, b.sz.uploadSize
	urls := make([]string, n)
	if err := parallel(n, 8, func(i int) error {
		var err error
		urls[i], err = t.create(ctx, size, fmt.Sprintf("%s-%d", name, i))
		return err
	}); err != nil {
		return err
	}

	// The hop is a fresh process (see measure): its VmHWM after the uploads
	// is their peak. The number of PATCHes in flight is sampled meanwhile.
	var inFlight atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	if t.hop != nil {
		if st, err := t.hop.usage(); err == nil {
			m.res.rssBase = st.rss
		}
	}
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			m.res.inFlightPeak = max(m.res.inFlightPeak, int(inFlight.Load()))
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	latencies := make([]time.Duration, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			inFlight.Add(1)
			defer inFlight.Add(-1)
			sent := time.Now()
			offset, err := t.patch(ctx, urls[i], 0, newPayload(seedConcurrent+uint64(i), 0, size))
			latencies[i] = time.Since(sent)
			if err == nil && offset != size {
				err = fmt.Errorf("PATCH answered offset %d, want %d", offset, size)
			}
			errs[i] = err
		})
	}
	m.start()
	began := time.Now()
	close(start)
	wg.Wait()
	m.res.elapsed = time.Since(began)
	m.stop()
	close(stopSampling)
	<-sampled
	if t.hop != nil {
		if st, err := t.hop.usage(); err == nil {
			m.res.rssPeak = st.hwm
		}
	}

	m.res.bytes = int64(n) * size
	m.res.latencies = latencies
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("upload %d of %d: %w", i, n, err)
		}
	}
	return parallel(n, 8, func(i int) error {
		return b.verify(ctx, fmt.Sprintf("%s-%d", name, i), payloadKey{seedConcurrent + uint64(i), size})
	})
}

// runCreations sends creations at the target rate, open loop: a creation is
// sent when it is due, whether or not earlier ones were answered, as
// independent browsers would. At most creationsInFlight wait for an answer;
// beyond that the sender waits, and the creation counts as late (the target
// could not keep up).
func (b *bench) runCreations(ctx context.Context, t *target, m *meter, name string) error {
	total := int(float64(b.sz.createRate) * b.sz.createFor.Seconds())
	interval := time.Second / time.Duration(b.sz.createRate)
	latencies := make([]time.Duration, total)
	var failures atomic.Int64
	var firstErr atomic.Value
	slots := make(chan struct{}, b.sz.creationsInFlight)
	var wg sync.WaitGroup

	m.start()
	began := time.Now()
	for i := 0; i < total; {
		// Send every creation that is due, then sleep a little: a sleep per
		// creation (every 0.5 ms) would oversleep.
		due := int(time.Since(began)/interval) + 1
		for ; i < min(due, total); i++ {
			select {
			case slots <- struct{}{}:
			default:
				m.res.late++
				slots <- struct{}{}
			}
			index := i // i is shared by every iteration of this loop
			wg.Go(func() {
				defer func() { <-slots }()
				sent := time.Now()
				_, err := t.create(ctx, b.sz.createdSize, fmt.Sprintf("%s-%d", name, index))
				latencies[index] = time.Since(sent)
				if err != nil {
					latencies[index] = -1
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			})
		}
		if i < total {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	m.res.elapsed = time.Since(began)
	m.stop()
	if t.hop != nil {
		if st, err := t.hop.usage(); err == nil {
			m.res.rssPeak = st.hwm // a fresh process: see runQuietly
		}
	}

	for _, l := range latencies {
		if l >= 0 {
			m.res.latencies = append(m.res.latencies, l)
		}
	}
	m.res.succeeded = len(m.res.latencies)
	if n := failures.Load(); n > 0 {
		return fmt.Errorf("%d of %d creations failed, the first with: %v", n, total, firstErr.Load())
	}
	return nil
}

// runHeads measures HEAD latency one request at a time: the latency a
// resuming client sees, not a throughput.
func (b *bench) runHeads(ctx context.Context, t *target, m *meter, name string) error {
	k, prefix := b.sz.headUploads, b.sz.headPrefix
	urls := make([]string, k)
	for i := range k {
		var err error
		if urls[i], err = t.create(ctx, 2*prefix, fmt.Sprintf("%s-%d", name, i)); err != nil {
			return err
		}
		if _, err := t.patch(ctx, urls[i], 0, newPayload(seedHead+uint64(i), 0, prefix)); err != nil {
			return err
		}
	}
	// A few unmeasured requests first, so that connections are open.
	for i := range 2 * k {
		if _, err := t.head(ctx, urls[i%k]); err != nil {
			return err
		}
	}
	m.start()
	began := time.Now()
	for i := range b.sz.heads {
		sent := time.Now()
		offset, err := t.head(ctx, urls[i%k])
		m.res.latencies = append(m.res.latencies, time.Since(sent))
		if err != nil {
			m.stop()
			return err
		}
		if offset != prefix {
			m.stop()
			return fmt.Errorf("HEAD answered offset %d, want %d", offset, prefix)
		}
	}
	m.res.elapsed = time.Since(began)
	m.stop()
	for i := range k {
		if err := b.verify(ctx, fmt.Sprintf("%s-%d", name, i), payloadKey{seedHead + uint64(i), prefix}); err != nil {
			return err
		}
	}
	return nil
}

// runSlow holds slowUploads uploads open at once, each on a connection of
// its own, each sending slowRate bytes per second in writes of slowWrite:
// browsers on slow links. They open (creation, then the PATCH) at
// slowOpening per second, so that creation is not what is measured, and end
// together. The hop's VmRSS is sampled meanwhile; a failed upload is
// counted, not fatal: failures are one of the workload's measures.
func (b *bench) runSlow(ctx context.Context, t *target, m *meter, name string) error {
	n := b.sz.slowUploads
	st := t.withSlowClient(n)
	defer st.client.CloseIdleConnections()
	if t.hop != nil {
		if usage, err := t.hop.usage(); err == nil {
			m.res.rssBase = usage.rss
		}
	}
	var open, opened, failed atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		failed.Add(1)
		firstErr.CompareAndSwap(nil, err)
	}
	// Each upload holds its last write until every upload has opened or
	// failed, and a second more, so that all of them are open at once even
	// when a loaded machine opens them later than planned; on time, the
	// release comes before anyone waits for it. It comes at the latest
	// maxHold after the planned end: an upload silent for longer than the
	// hops' idle timeouts (60 s for nginx's client_body_timeout, tusproxy's
	// and the emulator's tusd) would be cut, and counted as failed.
	const maxHold = 30 * time.Second
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	ramp := time.Duration(n) * time.Second / time.Duration(b.sz.slowOpening)
	latest := time.AfterFunc(ramp+b.sz.slowPlateau+maxHold, releaseAll)
	defer latest.Stop()
	var resolved atomic.Int64
	resolve := func() {
		if resolved.Add(1) == int64(n) {
			time.AfterFunc(time.Second, releaseAll)
		}
	}
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		b.sampleSlow(t, m.res, &open, done)
	}()

	interval := time.Duration(b.sz.slowWrite) * time.Second / time.Duration(b.sz.slowRate)
	succeeded := make([]bool, n)
	var wg sync.WaitGroup
	m.start()
	began := time.Now()
	for i := range n {
		time.Sleep(time.Until(began.Add(time.Duration(i) * time.Second / time.Duration(b.sz.slowOpening))))
		if ctx.Err() != nil {
			releaseAll()
			break
		}
		wg.Go(func() {
			size := b.sz.slowSize(i)
			uploadURL, err := st.create(ctx, size, fmt.Sprintf("%s-%d", name, i))
			if err != nil {
				resolve()
				fail(fmt.Errorf("upload %d: %w", i, err))
				return
			}
			body := &trickle{p: newPayload(seedSlow+uint64(i), 0, size), write: b.sz.slowWrite, interval: interval,
				opened: func() { open.Add(1); opened.Add(1); resolve() }, hold: release}
			offset, err := st.patchBody(ctx, uploadURL, 0, body, size)
			if body.started.Load() {
				open.Add(-1)
			} else {
				resolve()
			}
			if err == nil && offset != size {
				err = fmt.Errorf("PATCH answered offset %d, want %d", offset, size)
			}
			if err != nil {
				fail(fmt.Errorf("upload %d: %w", i, err))
				return
			}
			succeeded[i] = true
		})
	}
	wg.Wait()
	m.res.elapsed = time.Since(began)
	m.stop()
	close(done)
	<-sampled
	m.res.opened = int(opened.Load())
	for i := range n {
		m.res.bytes += b.sz.slowSize(i)
	}
	// Every upload that went through is checked; a failed one holds fewer
	// bytes, and is counted already.
	if err := parallel(n, 8, func(i int) error {
		if !succeeded[i] {
			return nil
		}
		return b.verify(ctx, fmt.Sprintf("%s-%d", name, i), payloadKey{seedSlow + uint64(i), b.sz.slowSize(i)})
	}); err != nil {
		fail(err)
	}
	m.res.failed = int(failed.Load())
	if m.res.failed > 0 {
		b.logf("%d of %d slow uploads through %s failed, the first with: %v", m.res.failed, n, t.kind, firstErr.Load())
		if t.hop != nil {
			// nginx says why it closed connections in its error log only.
			b.logf("%s's last words on stderr:\n%s", t.kind, lastLines(t.hop.stderr.String(), 5))
		}
	}
	return ctx.Err()
}

// sampleSlow samples the hop's VmRSS and the open uploads every slowSample
// until done.
func (b *bench) sampleSlow(t *target, res *result, open *atomic.Int64, done <-chan struct{}) {
	tick := time.NewTicker(b.sz.slowSample)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		if t.hop == nil {
			continue
		}
		now := int(open.Load())
		if usage, err := t.hop.usage(); err == nil && now > 0 {
			res.rssSamples = append(res.rssSamples, rssSample{open: now, rss: usage.rss})
		}
	}
}

// rssPerOpenUpload is (the hop's highest VmRSS while the most uploads
// were open − its VmRSS before the workload) / those uploads, in bytes. The
// most open is every upload (the plateau) unless some failed or a loaded
// machine opened them too late to overlap.
func (r result) rssPerOpenUpload() (float64, bool) {
	best := r.mostOpen()
	if best.open == 0 {
		return 0, false
	}
	return best.perUpload(r.rssBase), true
}

// mostOpen is the sample with the most uploads open, the highest VmRSS of
// those.
func (r result) mostOpen() rssSample {
	var best rssSample
	for _, s := range r.rssSamples {
		if s.open > best.open || (s.open == best.open && s.rss > best.rss) {
			best = s
		}
	}
	return best
}

// rssCurve is the hop's RSS as the uploads opened: the first sample after
// each quarter of n was open, then mostOpen.
func (r result) rssCurve(n int) []rssSample {
	best := r.mostOpen()
	var curve []rssSample
	for quarter := 1; quarter < 4; quarter++ {
		for _, s := range r.rssSamples {
			if s.open >= quarter*n/4 && s.open < best.open {
				curve = append(curve, s)
				break
			}
		}
	}
	if best.open > 0 {
		curve = append(curve, best)
	}
	return curve
}

// lastLines is the last n lines of text.
func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// trickle is the body of a slow upload: its payload, write bytes at a time,
// one write every interval.
type trickle struct {
	p        *payload
	write    int64
	interval time.Duration
	next     time.Time
	// started is set at the first read, when opened is called: the upload
	// is open. Atomic: the transport reads the body on a goroutine of its own.
	started atomic.Bool
	opened  func()
	// hold, when not nil, is waited for before the last write.
	hold <-chan struct{}
}

func (t *trickle) Read(b []byte) (int, error) {
	if t.p.pos >= t.p.end {
		return 0, io.EOF
	}
	if !t.started.Load() {
		t.started.Store(true)
		t.next = time.Now()
		t.opened()
	}
	time.Sleep(time.Until(t.next))
	n := min(int64(len(b)), t.write)
	if t.p.end-t.p.pos <= n && t.hold != nil {
		<-t.hold
	}
	t.next = t.next.Add(t.interval)
	return t.p.Read(b[:n])
}

// verify checks, by the emulator's SHA-256, that the upload created with
// filename received exactly the payload.
func (b *bench) verify(ctx context.Context, filename string, key payloadKey) error {
	state, err := b.emulatorAPI.video(ctx, filename)
	if err != nil {
		return err
	}
	if state.Offset != key.size {
		return fmt.Errorf("integrity: %s: the emulator holds %d bytes, want %d", filename, state.Offset, key.size)
	}
	if want := b.hashes.sum(key); state.SHA256 != want {
		return fmt.Errorf("integrity: %s: the emulator's SHA-256 is %s, want %s", filename, state.SHA256, want)
	}
	return nil
}

// parallel runs fn(0..n-1) on up to workers goroutines and returns the
// first error.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}
