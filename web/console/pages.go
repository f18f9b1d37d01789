package console

import (
	"errors"
	"net/http"
	"slices"
	"sort"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/web"
)

// overviewData is the overview's.
type overviewData struct {
	*gateway.Overview
	// Queue is each review-queue kind's size (nil: the store keeps no
	// index of it).
	Queue       map[string]int64
	QueueKinds  []string
	Activations Chart
	Decisions   Chart // admitted and refused per day
	Refusals    Chart // the 30 days' decisions by code
	Codes       []codeCount
}

// codeCount is one gate code's decisions over the chart's days.
type codeCount struct {
	Code string
	N    int64
}

// overview is the console's first page.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, req request) {
	if !web.Methods(w, r, http.MethodGet) {
		return
	}
	ctx := r.Context()
	o, err := c.cfg.Service.Overview(ctx)
	if err != nil {
		c.unavailable(w, c.base+"/", err)
		return
	}
	d := overviewData{Overview: o, QueueKinds: gateway.QueueKinds}
	if d.Queue, err = c.cfg.Service.QueueSizes(ctx); err != nil && !errors.Is(err, gateway.ErrNoQueueIndex) {
		c.unavailable(w, c.base+"/", err)
		return
	}
	c.charts(&d)
	c.render(w, r, req, "overview", d)
}

// charts draws the overview's charts from the per-day counters.
func (c *Console) charts(d *overviewData) {
	days := dayLabels(d.From, gateway.OverviewDays)
	d.Activations = barChart(c.rd.T("overview.activations"), days, padded(d.Daily[gateway.SeriesActivations]), "bar")
	admitted := padded(d.Daily[gateway.GateSeries(gateway.OutcomeAdmitted)])
	refused := make([]int64, gateway.OverviewDays)
	for _, code := range gateway.GateCodes() {
		series := padded(d.Daily[gateway.GateSeries(code)])
		if n := total(series); n > 0 {
			d.Codes = append(d.Codes, codeCount{Code: code, N: n})
		}
		if code == gateway.OutcomeAdmitted {
			continue
		}
		for i, v := range series {
			refused[i] += v
		}
	}
	d.Decisions = barChart(c.rd.T("overview.admitted"), days, admitted, "bar")
	refusedChart := barChart(c.rd.T("overview.refused"), days, refused, "bar bar-refused")
	d.Refusals = refusedChart
	sort.SliceStable(d.Codes, func(i, j int) bool { return d.Codes[i].N > d.Codes[j].N })
}

// padded is a series of exactly OverviewDays counts (a store answers
// zero-filled; this keeps a short answer from breaking the chart).
func padded(vs []int64) []int64 {
	out := make([]int64, gateway.OverviewDays)
	copy(out, vs)
	return out
}

// queueData is the review queue's page.
type queueData struct {
	Kind     string
	Kinds    []string
	Sizes    map[string]int64
	Items    []queueItem
	Next     string
	ReadOnly bool
	// Guards are the sources whose mass-suspension guard has tripped.
	Guards []string
	// NoIndex: the store keeps no queue index (the page says so).
	NoIndex bool
}

// queueItem is a queued licence with its evidence and levers.
type queueItem struct {
	Review *gateway.LicenseReview
	Levers *levers
}

// queue is one kind of the review queue, with its evidence and levers.
func (c *Console) queue(w http.ResponseWriter, r *http.Request, req request) {
	if !web.Methods(w, r, http.MethodGet) {
		return
	}
	ctx := r.Context()
	kind := r.URL.Query().Get("kind")
	if !slices.Contains(gateway.QueueKinds, kind) {
		kind = store.QueueFlagged
	}
	d := queueData{Kind: kind, Kinds: gateway.QueueKinds, ReadOnly: req.readOnly}
	reviews, next, err := c.cfg.Service.ReviewQueue(ctx, kind, r.URL.Query().Get("after"))
	d.Next = next
	for _, rv := range reviews {
		d.Items = append(d.Items, queueItem{Review: rv, Levers: c.licenseLevers(req, rv.License, queueLever)})
	}
	switch {
	case errors.Is(err, gateway.ErrNoQueueIndex):
		d.NoIndex = true
	case err != nil:
		c.unavailable(w, c.rd.Path("queue"), err)
		return
	}
	if d.Sizes, err = c.cfg.Service.QueueSizes(ctx); err != nil && !errors.Is(err, gateway.ErrNoQueueIndex) {
		c.unavailable(w, c.rd.Path("queue"), err)
		return
	}
	if rs, err := c.cfg.Service.RecheckStatus(ctx); err == nil {
		for name, g := range rs.Guards {
			if g.Tripped {
				d.Guards = append(d.Guards, name)
			}
		}
		slices.Sort(d.Guards)
	}
	c.render(w, r, req, "queue", d)
}

// searchData is the search page's: the results of a posted query. The
// query itself is never echoed: it may be a purchase code.
type searchData struct {
	Kinds    []string
	By       string // the kind searched by (the form keeps it)
	Searched bool
	Hits     []gateway.SearchHit
}

// search is the search form (GET) and its results (POST). A query is
// posted, never put in a URL: a purchase code in a query string would
// reach access logs and the browser's history.
func (c *Console) search(w http.ResponseWriter, r *http.Request, req request) {
	if !web.Methods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	d := searchData{Kinds: gateway.SearchKinds, By: gateway.SearchKinds[0]}
	if r.Method != http.MethodPost {
		c.render(w, r, req, "search", d)
		return
	}
	if !c.verify(w, r, req, false) {
		return
	}
	d.By = r.PostFormValue("by")
	hits, err := c.cfg.Service.Search(r.Context(), d.By, r.PostFormValue("q"))
	switch {
	case errors.Is(err, gateway.ErrSearchKind):
		c.badRequest(w)
		return
	case err != nil:
		c.unavailable(w, c.rd.Path("search"), err)
		return
	}
	d.Searched, d.Hits = true, hits
	c.render(w, r, req, "search", d)
}

// licenseData is a licence's page.
type licenseData struct {
	Review        *gateway.LicenseReview
	ReadOnly      bool
	Levers        *levers
	Installations []installationRow
}

// installationRow is an installation and its lever (active ones).
type installationRow struct {
	Installation gateway.AdminInstallation
	Deactivate   *levers
}

// license is a licence's page: facts, evidence, installations and their
// add-ons, the audit timeline, and the levers.
func (c *Console) license(w http.ResponseWriter, r *http.Request, req request, id string) {
	if !web.Methods(w, r, http.MethodGet) {
		return
	}
	rv, err := c.cfg.Service.Review(r.Context(), id)
	switch {
	case errors.Is(err, gateway.ErrNotFound):
		c.notFound(w)
		return
	case err != nil:
		c.unavailable(w, c.rd.Path("licenses", id), err)
		return
	}
	d := licenseData{Review: rv, ReadOnly: req.readOnly, Levers: c.licenseLevers(req, rv.License, nil)}
	for _, in := range rv.Installations {
		row := installationRow{Installation: in}
		if in.Status == "active" {
			row.Deactivate = c.levers(req, in.ID, []string{actDeactivate}, func(a string) string { return c.rd.Path("installations", in.ID, a) })
			if row.Deactivate != nil {
				row.Deactivate.License = rv.License.ID
			}
		}
		d.Installations = append(d.Installations, row)
	}
	c.render(w, r, req, "license", d)
}

// deliveriesData is the deliveries page's.
type deliveriesData struct {
	Status  string
	Entries []deliveryRow
	Next    string
}

// deliveryRow is an outbox entry and its retry lever (failed ones).
type deliveryRow struct {
	Entry store.OutboxEntry
	Retry *levers
}

// deliveries lists failed (default) or pending webhook deliveries.
func (c *Console) deliveries(w http.ResponseWriter, r *http.Request, req request) {
	if !web.Methods(w, r, http.MethodGet) {
		return
	}
	status := r.URL.Query().Get("status")
	if status != store.OutboxPending {
		status = store.OutboxFailed
	}
	es, next, err := c.cfg.Service.Deliveries(r.Context(), store.OutboxQuery{Status: status, After: r.URL.Query().Get("after"), Limit: 50})
	if err != nil {
		var ge *gateway.Error
		if errors.As(err, &ge) && ge.Code == gateway.CodeValidationFailed {
			c.badRequest(w) // a cursor this gateway never issued
			return
		}
		c.unavailable(w, c.rd.Path("deliveries"), err)
		return
	}
	d := deliveriesData{Status: status, Next: next}
	for _, e := range es {
		row := deliveryRow{Entry: e}
		if e.Status == store.OutboxFailed {
			row.Retry = c.levers(req, e.ID, []string{actRetry}, func(a string) string { return c.rd.Path("deliveries", e.ID, a) })
		}
		d.Entries = append(d.Entries, row)
	}
	c.render(w, r, req, "deliveries", d)
}

// versionsData is the installed versions page's: per product, each
// version's count of active installations, most first.
type versionsData struct {
	Products []productVersions
}

type productVersions struct {
	Product  string
	Versions []codeCount
}

// versions shows the installed versions per product.
func (c *Console) versions(w http.ResponseWriter, r *http.Request, req request) {
	if !web.Methods(w, r, http.MethodGet) {
		return
	}
	var d versionsData
	for _, p := range c.cfg.Service.Products() {
		counts, err := c.cfg.Service.InstalledVersions(r.Context(), p)
		if err != nil {
			c.unavailable(w, c.rd.Path("versions"), err)
			return
		}
		pv := productVersions{Product: p}
		for v, n := range counts {
			if n > 0 {
				pv.Versions = append(pv.Versions, codeCount{Code: v, N: n})
			}
		}
		sort.Slice(pv.Versions, func(i, j int) bool {
			a, b := pv.Versions[i], pv.Versions[j]
			return a.N > b.N || a.N == b.N && a.Code < b.Code
		})
		d.Products = append(d.Products, pv)
	}
	c.render(w, r, req, "versions", d)
}

// logAction records a console change in the gateway's log (the audit has
// it too, with the reason): who, what, on what. Never a key or a token:
// ids only.
func (c *Console) logAction(req request, action, id string) {
	c.log.Info("console action", zap.String("user", req.user), zap.String("action", action), zap.String("id", id))
}
