package console

import (
	"strconv"
	"time"
)

// Chart geometry: a bar chart is drawn in a viewBox of chartWidth by
// chartHeight user units, scaled by CSS to the page; the tallest bar
// fills the plot's height. Everything is computed here, so the template
// only places rectangles: no script, no inline style (the CSP allows
// neither).
const (
	chartWidth  = 600
	chartHeight = 160
	chartTop    = 10 // room above the tallest bar
	chartGap    = 2  // between bars
)

// Chart is one bar chart: a bar per day (or per code), and its words for
// people who cannot see it (the title, and a table beside it).
type Chart struct {
	Title string
	// From and To label the first and the last bar.
	From, To string
	Width    int
	Height   int
	Max      int64
	Bars     []Bar
}

// Bar is one bar: its label, its value, and its rectangle. Class picks
// its colour from the stylesheet.
type Bar struct {
	Label      string
	Value      int64
	X, Y, W, H float64
	Class      string
}

// barChart draws values as bars of equal width, scaled to the largest.
func barChart(title string, labels []string, values []int64, class string) Chart {
	ch := Chart{Title: title, Width: chartWidth, Height: chartHeight}
	for _, v := range values {
		ch.Max = max(ch.Max, v)
	}
	n := len(values)
	if n == 0 {
		return ch
	}
	ch.From, ch.To = labels[0], labels[n-1]
	slot := float64(chartWidth) / float64(n)
	plot := float64(chartHeight - chartTop)
	for i, v := range values {
		h := 0.0
		if ch.Max > 0 {
			h = plot * float64(v) / float64(ch.Max)
		}
		ch.Bars = append(ch.Bars, Bar{
			Label: labels[i], Value: v, Class: class,
			X: float64(i) * slot, W: max(slot-chartGap, 1),
			Y: chartHeight - h, H: h,
		})
	}
	return ch
}

// dayLabels names the days from from, n of them, as "2 Jan".
func dayLabels(from time.Time, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = from.AddDate(0, 0, i).Format("2 Jan")
	}
	return out
}

// total sums a series.
func total(vs []int64) int64 {
	var t int64
	for _, v := range vs {
		t += v
	}
	return t
}

// itoa is strconv.FormatInt for the templates' numbers.
func itoa(v int64) string { return strconv.FormatInt(v, 10) }
