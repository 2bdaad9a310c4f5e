package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is the outcome of a run, ready to print.
type report struct {
	b       *bench
	tables  []modeTable
	targets [][]string // header first
}

// modeTable is the results table of one upstream mode.
type modeTable struct {
	mode upstreamMode
	rows [][]string // header first
}

// notesMarker separates the generated part of the markdown file from notes
// written by hand, which a new run keeps.
const notesMarker = "<!-- Notes: everything below this line is written by hand and kept when `go run ./bench -out` rewrites this file. -->"

// comparedTo is the peer tusproxy is measured against in the tables'
// last column: nginx with 256 KiB body buffers, the faster of the nginx
// settings for streams (issue 15's targets name it).
const comparedTo = nginx256k

func (b *bench) report() *report {
	r := &report{b: b}
	for _, m := range b.runs {
		r.tables = append(r.tables, modeTable{mode: m.mode, rows: b.modeRows(m)})
	}
	r.targets = b.checkTargets()
	return r
}

// shown are the targets of the run, in column order.
func (b *bench) shown() []targetKind {
	var shown []targetKind
	for _, k := range kinds {
		if b.opts.targets[k] {
			shown = append(shown, k)
		}
	}
	return shown
}

// table builds the rows of one mode's table.
type table struct {
	b    *bench
	m    *modeRun
	rows [][]string
}

func (b *bench) modeRows(m *modeRun) [][]string {
	t := &table{b: b, m: m}
	header := []string{""}
	for _, k := range b.shown() {
		header = append(header, k.String())
	}
	t.rows = append(t.rows, append(header, "tusproxy vs direct", "tusproxy vs "+comparedTo.String()))
	sz := b.sz
	only := b.opts.only
	uploads := only[single] || only[chunked] || only[concurrent]

	t.throughputRow(single, fmt.Sprintf("%s in one PATCH: MB/s", size(sz.single)))
	t.throughputRow(chunked, fmt.Sprintf("%s in %s PATCHes: MB/s", size(sz.chunked), size(sz.chunk)))
	t.latencyRow(chunked, fmt.Sprintf("%s PATCH latency p50 / p95 / p99, ms", size(sz.chunk)), "%.1f")
	t.throughputRow(concurrent, fmt.Sprintf("%d × %s concurrent: MB/s (all uploads)", sz.uploads, size(sz.uploadSize)))
	t.latencyRow(concurrent, fmt.Sprintf("%d × %s: upload time p50 / p95 / p99, ms", sz.uploads, size(sz.uploadSize)), "%.0f")
	if only[creations] {
		t.comparedRow(fmt.Sprintf("creations at %d/s for %s: achieved/s", sz.createRate, sz.createFor), m.creationRate)
	}
	t.latencyRow(creations, "creation latency p50 / p95 / p99, ms", "%.2f")
	if only[creations] {
		t.cellRow("creation p99 of each repetition, ms", func(k targetKind) string {
			return joinFormatted(m.creationP99s(k), "%.1f")
		})
	}
	t.latencyRow(heads, "HEAD latency p50 / p95 / p99, ms", "%.3f")
	if only[slow] {
		t.cellRow(fmt.Sprintf("%d slow uploads at %s/s each, all open for %s: failed / most open at once", sz.slowUploads, size(sz.slowRate), sz.slowPlateau),
			func(k targetKind) string {
				res, ok := m.slowResult(k)
				if !ok {
					return "—"
				}
				if k == direct {
					return fmt.Sprint(res.failed)
				}
				return fmt.Sprintf("%d / %d", res.failed, res.mostOpen().open)
			})
		t.perHopRow("hop RSS per open slow upload at 25 / 50 / 75% and most open, KiB", func(k targetKind) (string, float64) {
			res, ok := m.slowResult(k)
			if !ok {
				return "—", 0
			}
			var perUpload []float64
			for _, s := range res.rssCurve(sz.slowUploads) {
				perUpload = append(perUpload, s.perUpload(res.rssBase)/1024)
			}
			last, _ := res.rssPerOpenUpload()
			return joinFormatted(perUpload, "%.1f"), last
		})
		t.perHopRow("hop CPU with the slow uploads, % of one core", func(k targetKind) (string, float64) {
			res, ok := m.slowResult(k)
			if !ok || res.elapsed <= 0 {
				return "—", 0
			}
			v := 100 * res.hopCPU.Seconds() / res.elapsed.Seconds()
			return fmt.Sprintf("%.0f%%", v), v
		})
	}
	for _, w := range []workload{single, chunked, concurrent} {
		if !only[w] {
			continue
		}
		t.perHopRow(fmt.Sprintf("hop CPU s/GB, %s", w.key()), func(k targetKind) (string, float64) {
			v, ok := m.hopCPUPerGB(w, k)
			return formatIf(ok, "%.2f", v), v
		})
	}
	if uploads {
		t.cellRow("emulator CPU s/GB (all upload workloads)", func(k targetKind) string {
			v, ok := m.emulatorCPUPerGB(k)
			return formatIf(ok, "%.2f", v)
		})
		// On a small machine the client, the hop and the emulator compete
		// for the cores: this row tells whether a target was limited by CPU
		// (near 100%) or by waiting.
		t.cellRow(fmt.Sprintf("machine busy during uploads (client + hop + emulator CPU / %d cores)", runtime.NumCPU()),
			func(k targetKind) string {
				v, ok := m.busy(k)
				return formatIf(ok, "%.0f%%", 100*v)
			})
	}
	// Anything else running on the machine skews the comparison; this row
	// shows how much did, so that a noisy run can be recognised.
	t.cellRow("other processes' CPU during the measured runs, % of the machine", func(k targetKind) string {
		v, ok := m.otherLoad(k)
		return formatIf(ok, "%.0f%%", 100*v)
	})
	if only[creations] {
		t.perHopRow("hop peak RSS with the creations (fresh process), MiB", func(k targetKind) (string, float64) {
			var peak int64
			for _, res := range m.results[creations][k] {
				peak = max(peak, res.rssPeak)
			}
			v := float64(peak) / (1 << 20)
			return formatIf(peak > 0, "%.1f", v), v
		})
	}
	if only[concurrent] {
		t.perHopRow("hop peak RSS with the concurrent uploads (fresh process), MiB", func(k targetKind) (string, float64) {
			peak, _ := m.concurrentRSS(k)
			v := float64(peak) / (1 << 20)
			return formatIf(peak > 0, "%.1f", v), v
		})
		t.perHopRow("hop RSS per in-flight upload, KiB", func(k targetKind) (string, float64) {
			_, perUpload := m.concurrentRSS(k)
			return formatIf(perUpload > 0, "%.0f", perUpload/1024), perUpload
		})
	}
	t.perHopRow("hop peak RSS over the whole run (VmHWM; workloads add up), MiB", func(k targetKind) (string, float64) {
		v := float64(m.peakRSS[k]) / (1 << 20)
		return formatIf(v > 0, "%.1f", v), v
	})
	t.cellRow("failed runs", func(k targetKind) string {
		n := 0
		for _, byTarget := range m.errs {
			n += len(byTarget[k])
		}
		return fmt.Sprint(n)
	})
	return t.rows
}

// throughputRow adds the median MB/s of w on every target, when w ran.
func (t *table) throughputRow(w workload, label string) {
	if !t.b.opts.only[w] {
		return
	}
	t.comparedRow(label, func(k targetKind) float64 { return t.m.throughput(w, k) })
}

// comparedRow adds value on every target and tusproxy's as a percentage of
// direct's and of the compared peer's.
func (t *table) comparedRow(label string, value func(targetKind) float64) {
	row := []string{label}
	for _, k := range t.b.shown() {
		row = append(row, formatOrDash(value(k), "%.0f"))
	}
	tp := value(viaTusproxy)
	t.rows = append(t.rows, append(row, percentOf(tp, value(direct)), percentOf(tp, value(comparedTo))))
}

// latencyRow adds the p50 / p95 / p99 of w's latencies on every target and
// what tusproxy adds to direct's and the compared peer's p99, when w ran.
func (t *table) latencyRow(w workload, label string, format string) {
	if !t.b.opts.only[w] {
		return
	}
	row := []string{label}
	var p99 [numKinds]time.Duration
	for _, k := range t.b.shown() {
		samples := t.m.latencies(w, k)
		if len(samples) == 0 {
			row = append(row, "—")
			continue
		}
		p99[k] = percentile(samples, 99)
		row = append(row, fmt.Sprintf(format+" / "+format+" / "+format,
			ms(percentile(samples, 50)), ms(percentile(samples, 95)), ms(p99[k])))
	}
	for _, k := range []targetKind{direct, comparedTo} {
		if p99[k] == 0 || p99[viaTusproxy] == 0 {
			row = append(row, "—")
			continue
		}
		row = append(row, fmt.Sprintf("p99 %+.2f ms", ms(p99[viaTusproxy]-p99[k])))
	}
	t.rows = append(t.rows, row)
}

// perHopRow adds a value of every hop (none for direct) and tusproxy's as a
// multiple of the compared peer's. value returns the cell and the number
// compared (0: none).
func (t *table) perHopRow(label string, value func(targetKind) (string, float64)) {
	row := []string{label}
	var values [numKinds]float64
	for _, k := range t.b.shown() {
		if k == direct {
			row = append(row, "—")
			continue
		}
		cell, v := value(k)
		values[k] = v
		row = append(row, cell)
	}
	ratio := "—"
	if values[comparedTo] > 0 && values[viaTusproxy] > 0 {
		ratio = fmt.Sprintf("%.2f×", values[viaTusproxy]/values[comparedTo])
	}
	t.rows = append(t.rows, append(row, "—", ratio))
}

// cellRow adds a cell on every target, without comparison.
func (t *table) cellRow(label string, cell func(targetKind) string) {
	row := []string{label}
	for _, k := range t.b.shown() {
		row = append(row, cell(k))
	}
	t.rows = append(t.rows, append(row, "—", "—"))
}

func formatIf(ok bool, format string, v float64) string {
	if !ok {
		return "—"
	}
	return fmt.Sprintf(format, v)
}

// joinFormatted writes values as "a / b / c"; "—" when there are none.
func joinFormatted(values []float64, format string) string {
	if len(values) == 0 {
		return "—"
	}
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = fmt.Sprintf(format, v)
	}
	return strings.Join(parts, " / ")
}

// throughput is the median MB/s of w's runs on k.
func (m *modeRun) throughput(w workload, k targetKind) float64 {
	var values []float64
	for _, res := range m.results[w][k] {
		values = append(values, mbPerSecond(res.bytes, res.elapsed))
	}
	return median(values)
}

// latencies pools the latencies of every run of w on k.
func (m *modeRun) latencies(w workload, k targetKind) []time.Duration {
	var all []time.Duration
	for _, res := range m.results[w][k] {
		all = append(all, res.latencies...)
	}
	return all
}

// creationRate is the median rate of answered creations.
func (m *modeRun) creationRate(k targetKind) float64 {
	var values []float64
	for _, res := range m.results[creations][k] {
		values = append(values, float64(res.succeeded)/res.elapsed.Seconds())
	}
	return median(values)
}

// creationP99s are the creation p99 of every repetition, in ms: pooled
// latencies hide a repetition that stalled.
func (m *modeRun) creationP99s(k targetKind) []float64 {
	var p99s []float64
	for _, res := range m.results[creations][k] {
		p99s = append(p99s, ms(percentile(res.latencies, 99)))
	}
	return p99s
}

// slowResult is the slow uploads' run on k (there is one per mode).
func (m *modeRun) slowResult(k targetKind) (result, bool) {
	results := m.results[slow][k]
	if len(results) == 0 {
		return result{}, false
	}
	return results[0], true
}

func (m *modeRun) hopCPUPerGB(w workload, k targetKind) (float64, bool) {
	var cpu time.Duration
	var bytes int64
	for _, res := range m.results[w][k] {
		cpu += res.hopCPU
		bytes += res.bytes
	}
	if bytes == 0 {
		return 0, false
	}
	return cpu.Seconds() / (float64(bytes) / 1e9), true
}

func (m *modeRun) emulatorCPUPerGB(k targetKind) (float64, bool) {
	var cpu time.Duration
	var bytes int64
	for _, w := range []workload{single, chunked, concurrent} {
		for _, res := range m.results[w][k] {
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
func (m *modeRun) busy(k targetKind) (float64, bool) {
	var cpu, wall time.Duration
	for _, w := range []workload{single, chunked, concurrent} {
		for _, res := range m.results[w][k] {
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
func (m *modeRun) otherLoad(k targetKind) (float64, bool) {
	var other, wall time.Duration
	for _, w := range allWorkloads {
		for _, res := range m.results[w][k] {
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
func (m *modeRun) concurrentRSS(k targetKind) (peak int64, perUpload float64) {
	for _, res := range m.results[concurrent][k] {
		peak = max(peak, res.rssPeak)
		if res.inFlightPeak > 0 && res.rssPeak > res.rssBase {
			perUpload = max(perUpload, float64(res.rssPeak-res.rssBase)/float64(res.inFlightPeak))
		}
	}
	return peak, perUpload
}

// Issue 15's targets.
const (
	slowTargetUploads   = 10000
	slowTargetRate      = 16 << 10 // bytes per second of each slow upload
	slowTargetPerUpload = 40 << 10 // bytes of hop RSS per open upload
	creationTargetP99   = 20 * time.Millisecond
)

// checkTargets compares the run with the issues' targets, in every mode.
func (b *bench) checkTargets() [][]string {
	rows := [][]string{{"target", "upstream", "measured", "verdict"}}
	for _, m := range b.runs {
		for _, row := range b.modeTargets(m) {
			rows = append(rows, append([]string{row[0], m.mode.key()}, row[1:]...))
		}
	}
	return rows
}

func verdict(met bool, miss string) string {
	if met {
		return "met"
	}
	return "**not met**: " + miss
}

// modeTargets are the target rows of one mode: label, measured, verdict.
func (b *bench) modeTargets(m *modeRun) [][]string {
	var rows [][]string
	only := b.opts.only
	if only[single] {
		d, rp, tp := m.throughput(single, direct), m.throughput(single, reverseProxy), m.throughput(single, viaTusproxy)
		if d > 0 && rp > 0 && tp > 0 {
			rows = append(rows, []string{
				"issue 7: one upload in one PATCH: ≥ 90% of direct and ≥ the reverse proxy",
				fmt.Sprintf("%.0f%% of direct, %.0f%% of the reverse proxy", 100*tp/d, 100*tp/rp),
				verdict(tp >= 0.9*d && tp >= rp, shortfall(tp, d, 0.9, rp)),
			})
		}
	}
	if only[chunked] {
		d, tp := m.throughput(chunked, direct), m.throughput(chunked, viaTusproxy)
		if d > 0 && tp > 0 {
			rows = append(rows, []string{
				fmt.Sprintf("issue 7: one upload in %s PATCHes: ≥ 85%% of direct", size(b.sz.chunk)),
				fmt.Sprintf("%.0f%% of direct (reverse proxy: %.0f%%)", 100*tp/d, 100*m.throughput(chunked, reverseProxy)/d),
				verdict(tp >= 0.85*d, fmt.Sprintf("%.0f points short", 100*(0.85-tp/d))),
			})
		}
	}
	if only[concurrent] {
		var inFlight int
		for _, res := range m.results[concurrent][viaTusproxy] {
			inFlight = max(inFlight, res.inFlightPeak)
		}
		limit := int64(64<<20) + int64(inFlight)*(256<<10)
		peak, perUpload := m.concurrentRSS(viaTusproxy)
		failed := len(m.errs[concurrent][viaTusproxy])
		if peak > 0 && inFlight > 0 {
			rows = append(rows, []string{
				fmt.Sprintf("issue 7: %d concurrent uploads: peak RSS ≤ 64 MiB + 256 KiB per in-flight PATCH (%d in flight: %.0f MiB), no errors",
					b.sz.uploads, inFlight, float64(limit)/(1<<20)),
				fmt.Sprintf("peak %.1f MiB (%.0f KiB per upload in flight), %d failed runs",
					float64(peak)/(1<<20), perUpload/1024, failed),
				verdict(peak <= limit && failed == 0, fmt.Sprintf("%.1f MiB over, %d failed runs", float64(peak-limit)/(1<<20), failed)),
			})
		}
	}
	latencyTarget := func(w workload, label string, budget time.Duration) {
		if !only[w] {
			return
		}
		d, tp := m.latencies(w, direct), m.latencies(w, viaTusproxy)
		if len(d) == 0 || len(tp) == 0 {
			return
		}
		over := percentile(tp, 99) - percentile(d, 99)
		rows = append(rows, []string{label,
			fmt.Sprintf("p99 %.3f ms vs %.3f ms direct: %+.3f ms", ms(percentile(tp, 99)), ms(percentile(d, 99)), ms(over)),
			verdict(over <= budget, fmt.Sprintf("%.2f ms over the budget", ms(over-budget))),
		})
	}
	latencyTarget(creations, fmt.Sprintf("issue 7: creation at %d/s: p99 ≤ the emulator's own init p99 + 2 ms", b.sz.createRate), 2*time.Millisecond)
	latencyTarget(heads, "issue 7: HEAD: p99 ≤ the upstream HEAD p99 + 1 ms", time.Millisecond)

	// Issue 15.
	if res, ok := m.slowResult(viaTusproxy); ok && only[slow] {
		perUpload, measured := res.rssPerOpenUpload()
		peer := ""
		if res, ok := m.slowResult(comparedTo); ok {
			if v, ok := res.rssPerOpenUpload(); ok {
				peer = fmt.Sprintf(" (%s: %.1f KiB)", comparedTo, v/1024)
			}
		}
		scaled := ""
		if b.sz.slowUploads != slowTargetUploads || b.sz.slowRate != slowTargetRate {
			scaled = fmt.Sprintf(" (measured with %d uploads at %s/s)", b.sz.slowUploads, size(b.sz.slowRate))
		}
		var misses []string
		if res.failed > 0 {
			misses = append(misses, fmt.Sprintf("%d failed", res.failed))
		}
		if !measured || perUpload > slowTargetPerUpload {
			misses = append(misses, fmt.Sprintf("%.1f KiB per open upload", perUpload/1024))
		}
		rows = append(rows, []string{
			fmt.Sprintf("issue 15: %d slow uploads open at once (%s/s each): 0 failures, hop RSS per open upload ≤ %s",
				slowTargetUploads, size(slowTargetRate), size(slowTargetPerUpload)),
			fmt.Sprintf("%d failed, %.1f KiB per open upload%s%s", res.failed, perUpload/1024, peer, scaled),
			verdict(len(misses) == 0, strings.Join(misses, ", ")),
		})
	}
	for _, w := range []workload{single, chunked} {
		if !only[w] {
			continue
		}
		tp, peer := m.throughput(w, viaTusproxy), m.throughput(w, comparedTo)
		tpCPU, ok1 := m.hopCPUPerGB(w, viaTusproxy)
		peerCPU, ok2 := m.hopCPUPerGB(w, comparedTo)
		if tp <= 0 || peer <= 0 || !ok1 || !ok2 {
			continue
		}
		label := "one PATCH"
		if w == chunked {
			label = size(b.sz.chunk) + " PATCHes"
		}
		var misses []string
		if tp < peer {
			misses = append(misses, fmt.Sprintf("%.0f%% slower", 100*(1-tp/peer)))
		}
		if tpCPU > peerCPU {
			misses = append(misses, fmt.Sprintf("%.0f%% more CPU per GB", 100*(tpCPU/peerCPU-1)))
		}
		rows = append(rows, []string{
			fmt.Sprintf("issue 15: %s: throughput ≥ %s's, hop CPU per GB ≤ its", label, comparedTo),
			fmt.Sprintf("%.0f vs %.0f MB/s, %.2f vs %.2f s/GB", tp, peer, tpCPU, peerCPU),
			verdict(len(misses) == 0, strings.Join(misses, ", ")),
		})
	}
	if p99s := m.creationP99s(viaTusproxy); only[creations] && len(p99s) > 0 {
		worst := slices.Max(p99s)
		rows = append(rows, []string{
			fmt.Sprintf("issue 15: creation at %d/s: p99 ≤ %s in every repetition", b.sz.createRate, creationTargetP99),
			"p99 per repetition " + joinFormatted(p99s, "%.1f") + " ms",
			verdict(worst <= ms(creationTargetP99), fmt.Sprintf("worst %.1f ms", worst)),
		})
	}
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
	for _, m := range r.b.runs {
		for _, k := range kinds {
			if v, ok := m.otherLoad(k); ok {
				worst = max(worst, v)
			}
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
	var sb strings.Builder
	sb.WriteString("\n" + r.noiseWarning())
	for _, note := range r.b.notes {
		sb.WriteString("Note: " + note + "\n")
	}
	for _, t := range r.tables {
		fmt.Fprintf(&sb, "\n%s\n\n%s", t.mode, markdownTable(t.rows))
	}
	return sb.String() + "\n" + markdownTable(r.targets)
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

// writeMarkdown writes the report to path, and its charts to chartsDir next
// to it, keeping hand-written notes below notesMarker.
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
	charts, err := r.writeCharts(filepath.Join(filepath.Dir(path), chartsDir))
	if err != nil {
		return err
	}
	b := r.b
	var sb strings.Builder
	sb.WriteString("# Benchmarks\n\n")
	sb.WriteString("tusproxy against a direct upload to the tus server and against the hops it replaces (a plain Go reverse proxy, " +
		"nginx), with a plain HTTP and a TLS upstream, all on one machine over loopback, measured in one run by the program in `bench/`.\n\n")
	reps := fmt.Sprintf("%d repetitions", b.opts.reps)
	if b.opts.reps == 1 {
		reps = "1 repetition"
	}
	fmt.Fprintf(&sb, "- Command: `%s` (from the module root; %s, targets alternating; the slow uploads once)\n", r.command(), reps)
	fmt.Fprintf(&sb, "- Date: %s; run took %s\n", b.started.UTC().Format("2006-01-02 15:04 MST"), time.Since(b.started).Round(time.Second))
	if b.revision != "" {
		fmt.Fprintf(&sb, "- tusproxy source: commit %s\n", b.revision)
	} else if b.opts.tusproxyBin != "" {
		fmt.Fprintf(&sb, "- tusproxy binary: given with -tusproxy\n")
	}
	changed := append(append(append([]string(nil), tusproxySettings...), b.inflightEnv...), b.opts.env...)
	env := "default settings except " + strings.Join(changed, " ")
	chunk := "upstream chunk size default"
	if b.chunkDefault != "" {
		chunk += " (" + b.chunkDefault + ")"
		if b.chunkDefault == "0" {
			chunk = "upstream chunk size default (0: a client's PATCH is never split)"
		}
	}
	fmt.Fprintf(&sb, "- tusproxy: `tusproxy serve`, bolt store in a temporary directory, log level warn, %s, %s\n", chunk, env)
	if b.nginxBin != "" {
		fmt.Fprintf(&sb, "- nginx: %s (%s), worker_processes %d, configuration in `bench/nginx.go`\n", nginxVersion(b.nginxBin), b.nginxBin, nginxWorkers)
	}
	for _, note := range b.notes {
		sb.WriteString("- Note: " + note + "\n")
	}
	for _, line := range machineLines() {
		sb.WriteString("- " + line + "\n")
	}
	sb.WriteString("\n## Results\n\n")
	sb.WriteString("Throughputs are the median of the repetitions (MB = 10^6 bytes); latency percentiles pool every " +
		"request of every repetition. The hop is the process between client and emulator: the reverse proxy, nginx (master " +
		"and workers summed) or tusproxy. CPU is user + system time from `/proc/<pid>/stat` during the measured window, per " +
		"10^9 bytes uploaded. The last two columns compare tusproxy with direct and with " + comparedTo.String() + ".\n\n")
	sb.WriteString(r.noiseWarning())
	for _, t := range r.tables {
		fmt.Fprintf(&sb, "### %s\n\n", capitalize(t.mode.String()))
		sb.WriteString(markdownTable(t.rows))
		sb.WriteString("\n")
	}
	if len(charts) > 0 {
		sb.WriteString("## Charts\n\n")
		for _, c := range charts {
			fmt.Fprintf(&sb, "![%s](%s)\n\n", c.title, c.link)
		}
	}
	sb.WriteString("## Targets\n\n")
	sb.WriteString(markdownTable(r.targets))
	sb.WriteString("\n## Method\n\n")
	sb.WriteString(methodText)
	sb.WriteString("\n")
	sb.WriteString(notes)
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// nginxVersion is what `nginx -v` says, e.g. "nginx/1.22.1".
func nginxVersion(bin string) string {
	out, _ := exec.Command(bin, "-v").CombinedOutput()
	_, version, ok := strings.Cut(strings.TrimSpace(string(out)), "nginx version: ")
	if !ok {
		return "version unknown"
	}
	return version
}

const methodText = `- The emulator (proxy/kinescopetest) runs in discard mode: tusd's handler over a store that keeps only
  offsets and a running SHA-256 per upload. Every upload of every workload is checked afterwards against the
  SHA-256 of what the client sent; a mismatch fails the run.
- direct and the peers get their upload URL from the emulator's ` + "`POST /v2/init`" + ` (through the peer), as a
  backend following Kinescope's guide does; tusproxy gets a tus creation POST and calls ` + "`/v2/init`" + ` itself.
  The creation rows therefore compare tusproxy's tus creation with the emulator's own init.
- The emulator and the reverse proxy (` + "`httputil.ReverseProxy`" + `, 256 idle upstream connections) are
  children of the bench process; nginx and tusproxy are the real binaries, children too. The load generator is
  the bench process itself; all of them share the machine's cores.
- nginx is Debian's, with a configuration the bench writes (` + "`bench/nginx.go`" + `): ` + "`proxy_request_buffering off`" + `,
  ` + "`proxy_http_version 1.1`" + ` with ` + "`Connection \"\"`" + ` and ` + "`keepalive 256`" + ` to the upstream, no body size limit,
  ` + "`client_body_buffer_size`" + ` 16k (its default) or 256k, 2 worker processes (as many as the cores the Go hops use),
  ` + "`worker_connections`" + ` and ` + "`worker_rlimit_nofile`" + ` above twice the most uploads held at once. Its CPU and
  memory are summed over the master and the workers; summed peaks (VmHWM) are an upper bound.
- With a TLS upstream the emulator serves HTTPS (HTTP/1.1 only, as every hop speaks upstream) with a certificate of
  a CA the bench generates (ECDSA P-256, written to its temporary directory); nginx verifies it
  (` + "`proxy_ssl_trusted_certificate`" + `, ` + "`proxy_ssl_verify on`" + `, ` + "`proxy_ssl_server_name on`" + `,
  ` + "`proxy_ssl_session_reuse on`" + `), the reverse proxy trusts it in its transport, tusproxy with
  ` + "`TUSPROXY_UPSTREAM_CA_FILE`" + `. Clients speak plain HTTP to the hops; direct speaks TLS to the emulator.
- Upload bodies are generated (64 KiB blocks of a random pool, each stamped with the upload and block number)
  and streamed, never held in memory; each concurrent upload has content of its own.
- Creations are sent open loop at the target rate (at most 512 waiting); latency is from send to answer.
  HEADs are sent one at a time on open connections.
- Slow uploads: each on a connection of its own, opened (creation, then the PATCH, whose Content-Length is the
  whole upload) at 500 per second, each sending 4 KiB every 250 ms (16 KiB/s); their sizes make them all end
  together, 15 s after the last one opened. RSS per open upload is (the hop's VmRSS while all of them are open,
  the highest sample of every 100 ms, − its VmRSS before the workload, on a fresh process) / uploads; the chart
  also shows it after a quarter, a half and three quarters opened. Failed uploads are counted (a client waits
  up to 30 s for a connection, as a browser does). The bench raises RLIMIT_NOFILE to what a hop needs (two
  descriptors per upload; children inherit it) or, when the hard limit cannot be raised, measures fewer
  uploads; and tusproxy's TUSPROXY_MAX_INFLIGHT when its default is below the number of uploads. Both are
  said above when they happen. The workload runs once per target and upstream.
- Before each concurrent-uploads, creations and slow-uploads run the hop is restarted and warmed up with one
  small upload, so that its VmHWM after the run is the peak RSS of that workload alone.
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
