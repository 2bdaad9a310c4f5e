package main

import (
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// chartsDir is where -out writes the charts, relative to the markdown file,
// which links them by that relative path.
const chartsDir = "bench/charts"

// chart is a chart written for the markdown file.
type chart struct {
	title string
	link  string // relative to the markdown file
}

// chartWidth and chartHeight suit a page of GitHub's markdown.
const (
	chartWidth  = 18 * vg.Centimeter
	chartHeight = 10 * vg.Centimeter
)

// writeCharts draws, for every upstream mode measured, throughput by
// workload, RSS per open upload against open uploads, and creation latency
// percentiles, as SVG files in dir. Charts whose workloads did not run are
// not drawn.
func (r *report) writeCharts(dir string) ([]chart, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// A target's color (plotutil.Color of its kind) is the same in every
	// chart.
	var charts []chart
	for _, m := range r.b.runs {
		for _, draw := range []func(*modeRun) (*plot.Plot, string){r.b.throughputChart, r.b.slowChart, r.b.creationChart} {
			p, name := draw(m)
			if p == nil {
				continue
			}
			file := name + "-" + m.mode.key() + ".svg"
			if err := p.Save(chartWidth, chartHeight, filepath.Join(dir, file)); err != nil {
				return nil, fmt.Errorf("chart %s: %w", file, err)
			}
			charts = append(charts, chart{title: p.Title.Text, link: chartsDir + "/" + file})
		}
	}
	return charts, nil
}

// throughputChart is the median MB/s of the stream workloads, a group of
// bars per workload, a bar per target.
func (b *bench) throughputChart(m *modeRun) (*plot.Plot, string) {
	var workloads []workload
	var names []string
	for _, w := range []workload{single, chunked, concurrent} {
		if b.opts.only[w] {
			workloads = append(workloads, w)
			names = append(names, map[workload]string{
				single:     size(b.sz.single) + " in one PATCH",
				chunked:    size(b.sz.chunked) + " in " + size(b.sz.chunk) + " PATCHes",
				concurrent: fmt.Sprintf("%d × %s at once", b.sz.uploads, size(b.sz.uploadSize)),
			}[w])
		}
	}
	shown := b.shown()
	if len(workloads) == 0 || len(shown) == 0 {
		return nil, ""
	}
	p := plot.New()
	p.Title.Text = "Throughput, " + m.mode.String()
	p.Y.Label.Text = "MB/s (median)"
	p.Legend.Top = true
	width := vg.Points(14)
	highest := 0.0
	for i, k := range shown {
		values := make(plotter.Values, len(workloads))
		for j, w := range workloads {
			values[j] = m.throughput(w, k)
			highest = max(highest, values[j])
		}
		bars, err := plotter.NewBarChart(values, width)
		if err != nil {
			return nil, ""
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(int(k))
		bars.Offset = width * vg.Length(float64(i)-float64(len(shown)-1)/2)
		p.Add(bars)
		p.Legend.Add(k.String(), bars)
	}
	p.NominalX(names...)
	p.Y.Min, p.Y.Max = 0, 1.5*highest // room for the legend above the bars
	return p, "throughput"
}

// slowChart is the hop's RSS per open upload as the slow uploads opened,
// a line per hop.
func (b *bench) slowChart(m *modeRun) (*plot.Plot, string) {
	if !b.opts.only[slow] {
		return nil, ""
	}
	p := plot.New()
	p.Title.Text = "Hop RSS per open slow upload, " + m.mode.String()
	p.X.Label.Text = "uploads open at once"
	p.Y.Label.Text = "KiB per open upload"
	p.X.Min, p.Y.Min = 0, 0
	p.Legend.Top = true
	drawn := false
	highest := 0.0
	for _, k := range b.shown() {
		res, ok := m.slowResult(k)
		if k == direct || !ok {
			continue
		}
		var points plotter.XYs
		for _, s := range res.rssCurve(b.sz.slowUploads) {
			points = append(points, plotter.XY{X: float64(s.open), Y: s.perUpload(res.rssBase) / 1024})
			highest = max(highest, points[len(points)-1].Y)
		}
		if len(points) == 0 {
			continue
		}
		if err := addSeries(p, k, points); err != nil {
			return nil, ""
		}
		drawn = true
	}
	if !drawn {
		return nil, ""
	}
	p.Y.Max = 1.5 * highest // room for the legend
	return p, "slow-rss"
}

// latencyPercentiles are the percentiles the creation chart shows.
var latencyPercentiles = []float64{50, 90, 95, 99, 99.9}

// creationChart is the creation latency percentiles of every target, on a
// logarithmic axis: tusproxy's durable creation and the emulator's own init
// differ by orders of magnitude.
func (b *bench) creationChart(m *modeRun) (*plot.Plot, string) {
	if !b.opts.only[creations] {
		return nil, ""
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Creation latency at %d/s, %s", b.sz.createRate, m.mode.String())
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "ms"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	var names []string
	for _, q := range latencyPercentiles {
		names = append(names, fmt.Sprintf("p%g", q))
	}
	drawn := false
	highest := 0.0
	for _, k := range b.shown() {
		samples := m.latencies(creations, k)
		if len(samples) == 0 {
			continue
		}
		var points plotter.XYs
		for i, q := range latencyPercentiles {
			// A floor of 1 µs: a logarithmic axis has no zero.
			points = append(points, plotter.XY{X: float64(i), Y: max(ms(percentile(samples, q)), 0.001)})
			highest = max(highest, points[i].Y)
		}
		if err := addSeries(p, k, points); err != nil {
			return nil, ""
		}
		drawn = true
	}
	if !drawn {
		return nil, ""
	}
	p.NominalX(names...)
	p.Y.Max = 30 * highest // room for the legend, on a logarithmic axis
	return p, "creation-latency"
}

// addSeries draws a target's points as a line with markers, in the colour
// and marker shape that target has in every chart, and names it in the legend.
func addSeries(p *plot.Plot, k targetKind, points plotter.XYs) error {
	line, dots, err := plotter.NewLinePoints(points)
	if err != nil {
		return err
	}
	line.Color, dots.Color = plotutil.Color(int(k)), plotutil.Color(int(k))
	dots.Shape = plotutil.Shape(int(k))
	p.Add(line, dots)
	p.Legend.Add(k.String(), line, dots)
	return nil
}
