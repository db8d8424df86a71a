package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// series is one set of bars of a grouped bar chart.
type series struct {
	name   string
	values []float64 // one per group; 0 draws no bar
	labels []string  // printed above each bar; "" for none
}

var chartColors = []color.Color{
	color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff},
	color.RGBA{R: 0xdd, G: 0x84, B: 0x52, A: 0xff},
	color.RGBA{R: 0x55, G: 0xa8, B: 0x68, A: 0xff},
}

// barPlot is a grouped bar chart: groups along X, one bar per series.
func barPlot(title, yLabel string, groups []string, ss []series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = font.Length(13)
	p.Y.Label.Text = yLabel
	p.Y.Min = 0
	p.Y.Tick.Marker = plainTicks{}
	p.NominalX(groups...)
	p.Legend.Top = true
	p.Legend.Left = false
	w := vg.Points(22)
	var top float64
	for i, s := range ss {
		bc, err := plotter.NewBarChart(plotter.Values(s.values), w)
		if err != nil {
			return nil, err
		}
		bc.Color = chartColors[i%len(chartColors)]
		bc.LineStyle.Width = 0
		off := w * vg.Length(float64(i)-float64(len(ss)-1)/2)
		bc.Offset = off
		p.Add(bc)
		if len(ss) > 1 {
			p.Legend.Add(s.name, bc)
		}
		var xys plotter.XYs
		var texts []string
		for j, v := range s.values {
			top = max(top, v)
			if j < len(s.labels) && s.labels[j] != "" {
				xys = append(xys, plotter.XY{X: float64(j), Y: v})
				texts = append(texts, s.labels[j])
			}
		}
		if len(xys) > 0 {
			l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
			if err != nil {
				return nil, err
			}
			for k := range l.TextStyle {
				l.TextStyle[k].XAlign = draw.XCenter
				l.TextStyle[k].Font.Size = font.Length(8)
			}
			l.Offset = vg.Point{X: off, Y: vg.Points(2)}
			p.Add(l)
		}
	}
	// Room for the labels and the legend above the tallest bar.
	p.Y.Max = top * 1.3
	if top == 0 {
		p.Y.Max = 1
	}
	return p, nil
}

// writeChart draws the chart: warm manifest req/s per target, cold first
// GET latency of Portcullis (and its multiple of one upstream manifest
// GET) against cosign verify, blob throughput.
func (r *Report) writeChart(path string) error {
	var plots []*plot.Plot

	targets := []string{targetUpstream, targetDistProxy, targetRevProxy, targetPortcullis}
	var warm []series
	for _, c := range []string{"by tag", "by digest"} {
		s := series{name: c}
		for _, t := range targets {
			v, _ := r.value("manifest", c, "req_per_s", t)
			s.values = append(s.values, v)
			s.labels = append(s.labels, shortNumber(v))
		}
		warm = append(warm, s)
	}
	p, err := barPlot("Warm manifest GET (req/s, higher is better)", "req/s", []string{"upstream", "distribution\nproxy", "reverse\nproxy", "portcullis\n(verified)"}, warm)
	if err != nil {
		return err
	}
	plots = append(plots, p)

	var cold []series
	var groups []string
	for by, f := range coldCases() {
		groups = append(groups, formatName(f)+"\nby "+by)
	}
	for _, t := range []string{targetPortcullis, targetCosign} {
		s := series{name: t}
		for by, f := range coldCases() {
			m, ok := r.find("cold", coldCase(by, f), "p50", t)
			switch {
			case !ok:
				s.values, s.labels = append(s.values, 0), append(s.labels, "")
			case m.Missing != "":
				s.values, s.labels = append(s.values, 0), append(s.labels, "not measured")
			default:
				label := fmt.Sprintf("%.1f ms", m.Value)
				if x, ok := r.ratio(upstreamRatio(by, f)); ok && t == targetPortcullis {
					label += fmt.Sprintf("\n(%.1fx)", x)
				}
				s.values, s.labels = append(s.values, m.Value), append(s.labels, label)
			}
		}
		cold = append(cold, s)
	}
	p, err = barPlot("First GET of a signed image, p50 (ms, lower is better)\n(Nx): N times one upstream manifest GET", "ms", groups, cold)
	if err != nil {
		return err
	}
	plots = append(plots, p)

	blob := series{name: "throughput"}
	for _, t := range targets {
		v, _ := r.value("blob", "full GET", "throughput", t)
		blob.values = append(blob.values, v)
		rss, _ := r.value("blob", "process", "peak_rss", t)
		blob.labels = append(blob.labels, fmt.Sprintf("%.0f MiB/s\n%.0f MiB RSS", v, rss))
	}
	p, err = barPlot(fmt.Sprintf("%s blob GET (MiB/s, higher is better)", formatSizeReport(r)), "MiB/s", []string{"upstream", "distribution\nproxy", "reverse\nproxy", "portcullis\n(verified)"}, []series{blob})
	if err != nil {
		return err
	}
	plots = append(plots, p)

	const dpi = 96
	width, height := vg.Length(1500)*vg.Inch/dpi, vg.Length(520)*vg.Inch/dpi
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Millimeter * 6, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func shortNumber(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func formatSizeReport(r *Report) string {
	if n, ok := r.Settings["blob_size"].(int64); ok {
		return formatSize(n)
	}
	return "large"
}

// plainTicks are the default ticks, labelled without decimals.
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = fmt.Sprintf("%.0f", ts[i].Value)
		}
	}
	return ts
}
