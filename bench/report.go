package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// report is the outcome of a run, ready to print.
type report struct {
	b       *bench
	table   [][]string // header first
	targets [][]string // header first
}

var kinds = []targetKind{direct, reverseProxy, viaTusproxy}

// notesMarker separates the generated part of the markdown file from notes
// written by hand, which a new run keeps.
const notesMarker = "<!-- Notes: everything below this line is written by hand and kept when `go run ./bench -out` rewrites this file. -->"

func (b *bench) report() *report {
	r := &report{b: b}
	r.table = append(r.table, []string{"", "direct", "reverse proxy", "tusproxy", "reverse proxy vs direct", "tusproxy vs direct"})
	sz := b.sz
	uploads := b.opts.only[single] || b.opts.only[chunked] || b.opts.only[concurrent]

	r.throughputRow(single, fmt.Sprintf("%s in one PATCH: MB/s", size(sz.single)))
	r.throughputRow(chunked, fmt.Sprintf("%s in %s PATCHes: MB/s", size(sz.chunked), size(sz.chunk)))
	r.latencyRow(chunked, fmt.Sprintf("%s PATCH latency p50 / p95 / p99, ms", size(sz.chunk)), "%.1f")
	r.throughputRow(concurrent, fmt.Sprintf("%d × %s concurrent: MB/s (all uploads)", sz.uploads, size(sz.uploadSize)))
	r.latencyRow(concurrent, fmt.Sprintf("%d × %s: upload time p50 / p95 / p99, ms", sz.uploads, size(sz.uploadSize)), "%.0f")
	if b.opts.only[creations] {
		r.comparedRow(fmt.Sprintf("creations at %d/s for %s: achieved/s", sz.createRate, sz.createFor), b.creationRate)
	}
	r.latencyRow(creations, "creation latency p50 / p95 / p99, ms", "%.2f")
	r.latencyRow(heads, "HEAD latency p50 / p95 / p99, ms", "%.3f")
	for _, w := range []workload{single, chunked, concurrent} {
		if !b.opts.only[w] {
			continue
		}
		r.perHopRow(fmt.Sprintf("hop CPU s/GB, %s", w.key()), func(k targetKind) (float64, bool) { return b.hopCPUPerGB(w, k) }, "%.2f")
	}
	if uploads {
		r.perTargetRow("emulator CPU s/GB (all upload workloads)", b.emulatorCPUPerGB, "%.2f", 1)
		// On a small machine the client, the hop and the emulator compete
		// for the cores: this row tells whether a target was limited by CPU
		// (near 100%) or by waiting.
		r.perTargetRow(fmt.Sprintf("machine busy during uploads (client + hop + emulator CPU / %d cores)", runtime.NumCPU()),
			b.busy, "%.0f%%", 100)
	}
	// Anything else running on the machine skews the comparison; this row
	// shows how much did, so that a noisy run can be recognised.
	r.perTargetRow("other processes' CPU during the measured runs, % of the machine", b.otherLoad, "%.0f%%", 100)
	if b.opts.only[creations] {
		r.perHopRow("hop peak RSS with the creations (fresh process), MiB", func(k targetKind) (float64, bool) {
			var peak int64
			for _, res := range b.results[creations][k] {
				peak = max(peak, res.rssPeak)
			}
			return float64(peak) / (1 << 20), peak > 0
		}, "%.1f")
	}
	if b.opts.only[concurrent] {
		r.perHopRow("hop peak RSS with the concurrent uploads (fresh process), MiB", func(k targetKind) (float64, bool) {
			peak, _ := b.concurrentRSS(k)
			return float64(peak) / (1 << 20), peak > 0
		}, "%.1f")
		r.perHopRow("hop RSS per in-flight upload, KiB", func(k targetKind) (float64, bool) {
			_, perUpload := b.concurrentRSS(k)
			return perUpload / 1024, perUpload > 0
		}, "%.0f")
	}
	r.perHopRow("hop peak RSS over the whole run (VmHWM; workloads add up), MiB", func(k targetKind) (float64, bool) {
		v, ok := b.peakRSS[k]
		return float64(v) / (1 << 20), ok && v > 0
	}, "%.1f")
	errRow := []string{"failed runs"}
	for _, k := range kinds {
		n := 0
		for _, byTarget := range b.errs {
			n += len(byTarget[k])
		}
		errRow = append(errRow, fmt.Sprint(n))
	}
	r.table = append(r.table, append(errRow, "", ""))

	r.targets = b.checkTargets()
	return r
}

// throughputRow adds the median MB/s of w on every target, when w ran.
func (r *report) throughputRow(w workload, label string) {
	if !r.b.opts.only[w] {
		return
	}
	r.comparedRow(label, func(k targetKind) float64 { return r.b.throughput(w, k) })
}

// comparedRow adds value on every target and the two hops as a percentage
// of direct.
func (r *report) comparedRow(label string, value func(targetKind) float64) {
	row := []string{label}
	var values [3]float64
	for _, k := range kinds {
		values[k] = value(k)
		row = append(row, formatOrDash(values[k], "%.0f"))
	}
	row = append(row, percentOf(values[reverseProxy], values[direct]), percentOf(values[viaTusproxy], values[direct]))
	r.table = append(r.table, row)
}

// latencyRow adds the p50 / p95 / p99 of w's latencies on every target and
// what each hop adds to the p99, when w ran.
func (r *report) latencyRow(w workload, label string, format string) {
	if !r.b.opts.only[w] {
		return
	}
	row := []string{label}
	var p99 [3]time.Duration
	for _, k := range kinds {
		samples := r.b.latencies(w, k)
		if len(samples) == 0 {
			row = append(row, "—")
			continue
		}
		p99[k] = percentile(samples, 99)
		row = append(row, fmt.Sprintf(format+" / "+format+" / "+format,
			ms(percentile(samples, 50)), ms(percentile(samples, 95)), ms(p99[k])))
	}
	for _, k := range []targetKind{reverseProxy, viaTusproxy} {
		if p99[k] == 0 || p99[direct] == 0 {
			row = append(row, "—")
			continue
		}
		row = append(row, fmt.Sprintf("p99 %+.2f ms", ms(p99[k]-p99[direct])))
	}
	r.table = append(r.table, row)
}

// perHopRow adds a value of the two hops (none for direct) and tusproxy's
// as a multiple of the reverse proxy's.
func (r *report) perHopRow(label string, value func(targetKind) (float64, bool), format string) {
	row := []string{label, "—"}
	var values [3]float64
	for _, k := range []targetKind{reverseProxy, viaTusproxy} {
		v, ok := value(k)
		if !ok {
			row = append(row, "—")
			continue
		}
		values[k] = v
		row = append(row, fmt.Sprintf(format, v))
	}
	ratio := "—"
	if values[reverseProxy] > 0 && values[viaTusproxy] > 0 {
		ratio = fmt.Sprintf("%.2f× reverse proxy", values[viaTusproxy]/values[reverseProxy])
	}
	r.table = append(r.table, append(row, "—", ratio))
}

// perTargetRow adds value, times scale, on every target, without comparison.
func (r *report) perTargetRow(label string, value func(targetKind) (float64, bool), format string, scale float64) {
	row := []string{label}
	for _, k := range kinds {
		v, ok := value(k)
		if !ok {
			row = append(row, "—")
			continue
		}
		row = append(row, fmt.Sprintf(format, scale*v))
	}
	r.table = append(r.table, append(row, "—", "—"))
}

// throughput is the median MB/s of w's runs on k.
func (b *bench) throughput(w workload, k targetKind) float64 {
	var values []float64
	for _, res := range b.results[w][k] {
		values = append(values, mbPerSecond(res.bytes, res.elapsed))
	}
	return median(values)
}

// latencies pools the latencies of every run of w on k.
func (b *bench) latencies(w workload, k targetKind) []time.Duration {
	var all []time.Duration
	for _, res := range b.results[w][k] {
		all = append(all, res.latencies...)
	}
	return all
}

// creationRate is the median rate of answered creations.
func (b *bench) creationRate(k targetKind) float64 {
	var values []float64
	for _, res := range b.results[creations][k] {
		values = append(values, float64(res.succeeded)/res.elapsed.Seconds())
	}
	return median(values)
}

func (b *bench) hopCPUPerGB(w workload, k targetKind) (float64, bool) {
	var cpu time.Duration
	var bytes int64
	for _, res := range b.results[w][k] {
		cpu += res.hopCPU
		bytes += res.bytes
	}
	if bytes == 0 {
		return 0, false
	}
	return cpu.Seconds() / (float64(bytes) / 1e9), true
}

func (b *bench) emulatorCPUPerGB(k targetKind) (float64, bool) {
	var cpu time.Duration
	var bytes int64
	for _, w := range []workload{single, chunked, concurrent} {
		for _, res := range b.results[w][k] {
			cpu += res.emulatorCPU
			bytes += res.bytes
		}
	}
	if bytes == 0 {
		return 0, false
	}
	return cpu.Seconds() / (float64(bytes) / 1e9), true
}

// busy is the share of the machine's CPU time that the client, the hop and
// the emulator used during the upload workloads on k.
func (b *bench) busy(k targetKind) (float64, bool) {
	var cpu, wall time.Duration
	for _, w := range []workload{single, chunked, concurrent} {
		for _, res := range b.results[w][k] {
			cpu += res.clientCPU + res.hopCPU + res.emulatorCPU
			wall += res.elapsed
		}
	}
	if wall == 0 {
		return 0, false
	}
	return cpu.Seconds() / (wall.Seconds() * float64(runtime.NumCPU())), true
}

// otherLoad is the share of the machine's CPU time used by processes other
// than the client, the hop and the emulator during the runs kept on k.
func (b *bench) otherLoad(k targetKind) (float64, bool) {
	var other, wall time.Duration
	for _, w := range allWorkloads {
		for _, res := range b.results[w][k] {
			other += max(res.machineCPU-res.clientCPU-res.hopCPU-res.emulatorCPU, 0)
			wall += res.elapsed
		}
	}
	if wall == 0 {
		return 0, false
	}
	return other.Seconds() / (wall.Seconds() * float64(runtime.NumCPU())), true
}

// concurrentRSS is the hop's highest peak RSS with the concurrent uploads
// (each repetition runs them on a fresh process), and the largest growth
// over its RSS just before them, per PATCH in flight.
func (b *bench) concurrentRSS(k targetKind) (peak int64, perUpload float64) {
	for _, res := range b.results[concurrent][k] {
		peak = max(peak, res.rssPeak)
		if res.inFlightPeak > 0 && res.rssPeak > res.rssBase {
			perUpload = max(perUpload, float64(res.rssPeak-res.rssBase)/float64(res.inFlightPeak))
		}
	}
	return peak, perUpload
}

// checkTargets compares the run with the targets.
func (b *bench) checkTargets() [][]string {
	rows := [][]string{{"target (issue 7)", "measured", "verdict"}}
	verdict := func(met bool, miss string) string {
		if met {
			return "met"
		}
		return "**not met**: " + miss
	}
	if b.opts.only[single] {
		d, rp, tp := b.throughput(single, direct), b.throughput(single, reverseProxy), b.throughput(single, viaTusproxy)
		if d > 0 && rp > 0 && tp > 0 {
			rows = append(rows, []string{
				"one upload in one PATCH: ≥ 90% of direct and ≥ the reverse proxy",
				fmt.Sprintf("%.0f%% of direct, %.0f%% of the reverse proxy", 100*tp/d, 100*tp/rp),
				verdict(tp >= 0.9*d && tp >= rp, shortfall(tp, d, 0.9, rp)),
			})
		}
	}
	if b.opts.only[chunked] {
		d, tp := b.throughput(chunked, direct), b.throughput(chunked, viaTusproxy)
		if d > 0 && tp > 0 {
			rows = append(rows, []string{
				fmt.Sprintf("one upload in %s PATCHes: ≥ 85%% of direct", size(b.sz.chunk)),
				fmt.Sprintf("%.0f%% of direct (reverse proxy: %.0f%%)", 100*tp/d, 100*b.throughput(chunked, reverseProxy)/d),
				verdict(tp >= 0.85*d, fmt.Sprintf("%.0f points short", 100*(0.85-tp/d))),
			})
		}
	}
	if b.opts.only[concurrent] {
		var inFlight int
		for _, res := range b.results[concurrent][viaTusproxy] {
			inFlight = max(inFlight, res.inFlightPeak)
		}
		limit := int64(64<<20) + int64(inFlight)*(256<<10)
		peak, perUpload := b.concurrentRSS(viaTusproxy)
		failed := len(b.errs[concurrent][viaTusproxy])
		if peak > 0 && inFlight > 0 {
			rows = append(rows, []string{
				fmt.Sprintf("%d concurrent uploads: peak RSS ≤ 64 MiB + 256 KiB per in-flight PATCH (%d in flight: %.0f MiB), no errors",
					b.sz.uploads, inFlight, float64(limit)/(1<<20)),
				fmt.Sprintf("peak %.1f MiB (%.0f KiB per upload in flight), %d failed runs",
					float64(peak)/(1<<20), perUpload/1024, failed),
				verdict(peak <= limit && failed == 0, fmt.Sprintf("%.1f MiB over, %d failed runs", float64(peak-limit)/(1<<20), failed)),
			})
		}
	}
	latencyTarget := func(w workload, label string, budget time.Duration) {
		if !b.opts.only[w] {
			return
		}
		d, tp := b.latencies(w, direct), b.latencies(w, viaTusproxy)
		if len(d) == 0 || len(tp) == 0 {
			return
		}
		over := percentile(tp, 99) - percentile(d, 99)
		rows = append(rows, []string{label,
			fmt.Sprintf("p99 %.3f ms vs %.3f ms direct: %+.3f ms", ms(percentile(tp, 99)), ms(percentile(d, 99)), ms(over)),
			verdict(over <= budget, fmt.Sprintf("%.2f ms over the budget", ms(over-budget))),
		})
	}
	latencyTarget(creations, fmt.Sprintf("creation at %d/s: p99 ≤ the emulator's own init p99 + 2 ms", b.sz.createRate), 2*time.Millisecond)
	if b.opts.only[creations] {
		if rate := b.creationRate(viaTusproxy); rate > 0 {
			rows[len(rows)-1][1] += fmt.Sprintf("; %.0f/s achieved of %d/s", rate, b.sz.createRate)
		}
	}
	latencyTarget(heads, "HEAD: p99 ≤ the upstream HEAD p99 + 1 ms", time.Millisecond)
	return rows
}

func shortfall(tp, d, share, rp float64) string {
	var parts []string
	if tp < share*d {
		parts = append(parts, fmt.Sprintf("%.0f points short of %.0f%% of direct", 100*(share-tp/d), 100*share))
	}
	if tp < rp {
		parts = append(parts, fmt.Sprintf("%.0f%% slower than the reverse proxy", 100*(1-tp/rp)))
	}
	return strings.Join(parts, "; ")
}

func formatOrDash(v float64, format string) string {
	if v <= 0 {
		return "—"
	}
	return fmt.Sprintf(format, v)
}

func percentOf(v, of float64) string {
	if v <= 0 || of <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", 100*v/of)
}

// size writes a byte count in binary units.
func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func markdownTable(rows [][]string) string {
	var sb strings.Builder
	for i, row := range rows {
		sb.WriteString("| " + strings.Join(row, " | ") + " |\n")
		if i == 0 {
			sb.WriteString(strings.Repeat("|---", len(row)) + "|\n")
		}
	}
	return sb.String()
}

// noiseWarning warns when other processes used a noticeable share of the
// machine while uploads were measured: the targets then did not compete on
// equal terms, and the ratios are not to be trusted.
func (r *report) noiseWarning() string {
	worst := 0.0
	for _, k := range kinds {
		if v, ok := r.b.otherLoad(k); ok {
			worst = max(worst, v)
		}
	}
	repeated := ""
	if r.b.repeated > 0 {
		repeated = fmt.Sprintf(" (%d runs were measured again because of it, keeping the quietest attempt)", r.b.repeated)
	}
	if worst < noisyShare {
		if repeated != "" {
			return "Other processes were busy at times" + repeated + ".\n\n"
		}
		return ""
	}
	return fmt.Sprintf("**Warning**: other processes used %.0f%% of the machine's CPU during the runs kept%s; "+
		"the numbers below are skewed by them. Run again on a quiet machine.\n\n", 100*worst, repeated)
}

// text is the report for the terminal.
func (r *report) text() string {
	return "\n" + r.noiseWarning() + markdownTable(r.table) + "\n" + markdownTable(r.targets)
}

// command is how this run was started, for the reader to repeat it.
func (r *report) command() string {
	parts := []string{"go", "run", "./bench"}
	for _, arg := range r.b.opts.args {
		if strings.ContainsAny(arg, " \t'\"$") {
			arg = "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
		}
		parts = append(parts, arg)
	}
	return strings.Join(parts, " ")
}

// writeMarkdown writes the report to path, keeping hand-written notes below
// notesMarker.
func (r *report) writeMarkdown(path string) error {
	notes := notesMarker + "\n"
	old, err := os.ReadFile(path)
	switch {
	case err == nil:
		if i := strings.Index(string(old), notesMarker); i >= 0 {
			notes = string(old[i:])
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	b := r.b
	var sb strings.Builder
	sb.WriteString("# Benchmarks\n\n")
	sb.WriteString("tusproxy against a direct upload to the tus server and against a plain reverse proxy, " +
		"all on one machine over loopback, measured in one run by the program in `bench/`.\n\n")
	reps := fmt.Sprintf("%d repetitions", b.opts.reps)
	if b.opts.reps == 1 {
		reps = "1 repetition"
	}
	fmt.Fprintf(&sb, "- Command: `%s` (from the module root; %s, targets alternating)\n", r.command(), reps)
	fmt.Fprintf(&sb, "- Date: %s; run took %s\n", b.started.UTC().Format("2006-01-02 15:04 MST"), time.Since(b.started).Round(time.Second))
	if b.revision != "" {
		fmt.Fprintf(&sb, "- tusproxy source: commit %s\n", b.revision)
	} else if b.opts.tusproxyBin != "" {
		fmt.Fprintf(&sb, "- tusproxy binary: given with -tusproxy\n")
	}
	env := "default settings"
	if len(b.opts.env) > 0 {
		env = "plus " + strings.Join(b.opts.env, " ")
	}
	chunk := "upstream chunk size default"
	if b.chunkDefault != "" {
		chunk += " (" + b.chunkDefault + ")"
		if b.chunkDefault == "0" {
			chunk = "upstream chunk size default (0: a client's PATCH is never split)"
		}
	}
	fmt.Fprintf(&sb, "- tusproxy: `tusproxy serve`, bolt store in a temporary directory, log level warn, %s, %s\n", chunk, env)
	for _, line := range machineLines() {
		sb.WriteString("- " + line + "\n")
	}
	sb.WriteString("\n## Results\n\n")
	sb.WriteString("Throughputs are the median of the repetitions (MB = 10^6 bytes); latency percentiles pool every " +
		"request of every repetition. The hop is the process between client and emulator: the reverse proxy or tusproxy. " +
		"CPU is user + system time from `/proc/<pid>/stat` during the measured window, per 10^9 bytes uploaded.\n\n")
	sb.WriteString(r.noiseWarning())
	sb.WriteString(markdownTable(r.table))
	sb.WriteString("\n## Targets\n\n")
	sb.WriteString(markdownTable(r.targets))
	sb.WriteString("\n## Method\n\n")
	sb.WriteString(methodText)
	sb.WriteString("\n")
	sb.WriteString(notes)
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

const methodText = `- The emulator (proxy/kinescopetest) runs in discard mode: tusd's handler over a store that keeps only
  offsets and a running SHA-256 per upload. Every upload of every workload is checked afterwards against the
  SHA-256 of what the client sent; a mismatch fails the run.
- direct and reverse proxy get their upload URL from the emulator's ` + "`POST /v2/init`" + ` (through the reverse
  proxy for the latter), as a backend following Kinescope's guide does; tusproxy gets a tus creation POST and
  calls ` + "`/v2/init`" + ` itself. The creation rows therefore compare tusproxy's tus creation with the
  emulator's own init.
- The emulator and the reverse proxy (` + "`httputil.ReverseProxy`" + `, 256 idle upstream connections) are
  children of the bench process; tusproxy is the real binary, ` + "`tusproxy serve`" + `, configured by
  environment variables. The load generator is the bench process itself; all four share the machine's cores.
- Upload bodies are generated (64 KiB blocks of a random pool, each stamped with the upload and block number)
  and streamed, never held in memory; each concurrent upload has content of its own.
- Creations are sent open loop at the target rate (at most 512 waiting); latency is from send to answer.
  HEADs are sent one at a time on open connections.
- Before each concurrent-uploads run and each creations run the hop (reverse proxy, tusproxy) is restarted
  and warmed up with one small upload, so that its VmHWM after the run is the peak RSS of that workload alone.
  RSS per in-flight upload is the concurrent peak minus the hop's VmRSS just before the PATCHes start,
  divided by the most PATCHes in flight. The whole-run peak adds workloads up: Go returns freed memory to the
  system only after minutes.
- tusproxy's admin listener gets a free port, logged at start and at every restart; with
  ` + "`-env TUSPROXY_PPROF=true`" + ` it serves ` + "`/debug/pprof`" + ` there, for profiles of a workload while it runs.
`

// machineLines describes the machine: CPU from /proc/cpuinfo, nproc, free.
func machineLines() []string {
	var lines []string
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		model, processors := "", 0
		for line := range strings.Lines(string(raw)) {
			key, value, _ := strings.Cut(line, ":")
			switch strings.TrimSpace(key) {
			case "model name":
				if model == "" {
					model = strings.TrimSpace(value)
				}
			case "processor":
				processors++
			}
		}
		lines = append(lines, fmt.Sprintf("CPU (/proc/cpuinfo): %s, %d processors", model, processors))
	}
	if out, err := exec.Command("nproc").Output(); err == nil {
		lines = append(lines, "`nproc`: "+strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("free", "-m").Output(); err == nil {
		lines = append(lines, "`free -m`:\n\n  ```\n  "+strings.ReplaceAll(strings.TrimRight(string(out), " \n"), "\n", "\n  ")+"\n  ```\n")
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	lines = append(lines, fmt.Sprintf("Linux %s, %s, GOMAXPROCS %d", strings.TrimSpace(string(kernel)), runtime.Version(), runtime.GOMAXPROCS(0)))
	return lines
}
