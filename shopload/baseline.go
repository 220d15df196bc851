package shopload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// plainProduct is what the plain handler answers: a product shaped like
// productsvc's in JSON.
type plainProduct struct {
	ID           string     `json:"id"`
	SKU          string     `json:"sku"`
	Name         string     `json:"name"`
	Description  string     `json:"description"`
	CategoryID   string     `json:"categoryId"`
	CategoryName string     `json:"categoryName"`
	Price        plainMoney `json:"price"`
	Version      string     `json:"version"`
	CreateTime   time.Time  `json:"createTime"`
	UpdateTime   time.Time  `json:"updateTime"`
}

type plainMoney struct {
	CurrencyCode string `json:"currencyCode"`
	AmountMinor  string `json:"amountMinor"`
}

// PlainServer is the baseline: a plain net/http JSON handler on loopback
// that looks a product up in a map, with none of the services' layers.
type PlainServer struct {
	URL  string
	srv  *http.Server
	ids  []string
	body [][]byte
}

// StartPlainServer serves n products on a free loopback port.
func StartPlainServer(n int) (*PlainServer, error) {
	products := make(map[string]*plainProduct, n)
	p := &PlainServer{}
	now := time.Now().UTC()
	for i := range n {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		products[id] = &plainProduct{
			ID: id, SKU: fmt.Sprintf("LOAD-%06d", i), Name: fmt.Sprintf("plain product %d", i),
			Description: fmt.Sprintf("A plain product made for load tests, number %d of the catalog.", i),
			CategoryID:  "00000000-0000-4000-8000-000000000000", CategoryName: "Load 0",
			Price: plainMoney{CurrencyCode: "EUR", AmountMinor: strconv.Itoa(100 + i)}, Version: "1",
			CreateTime: now, UpdateTime: now,
		}
		p.ids = append(p.ids, id)
		p.body = append(p.body, []byte(`{"id":"`+id+`"}`))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /product", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID string `json:"id"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			http.Error(w, `{"code":"invalid_argument"}`, http.StatusBadRequest)
			return
		}
		prod, ok := products[req.ID]
		if !ok {
			http.Error(w, `{"code":"not_found"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Product *plainProduct `json:"product"`
		}{prod})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.URL = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Close stops the server.
func (p *PlainServer) Close() { p.srv.Close() }

// Op posts a random product id and decodes the JSON answer.
func (p *PlainServer) Op(client *http.Client) Op {
	url := p.URL + "/product"
	return func(ctx context.Context, w *Worker) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(p.body[w.Rand.IntN(len(p.body))]))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out struct {
			Product plainProduct `json:"product"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("plain handler: HTTP %d", resp.StatusCode)
		}
		return nil
	}
}

// RawDB is the database baseline: single-row INSERTs and SELECTs by
// primary key with pgx, nothing else, on the services' PostgreSQL.
type RawDB struct {
	pool *pgxpool.Pool
	rows int
}

// rawRows is how many rows the SELECT baseline reads from.
const rawRows = 10_000

// OpenRawDB creates the baseline's tables in the database at url and
// opens a pool of workers connections.
func OpenRawDB(ctx context.Context, url string, workers int) (*RawDB, error) {
	pool, err := pgxpool.New(ctx, url+"&pool_max_conns="+strconv.Itoa(workers))
	if err != nil {
		return nil, err
	}
	_, err = pool.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS raw_insert (id bigserial PRIMARY KEY, payload text NOT NULL, created timestamptz NOT NULL);
		CREATE TABLE IF NOT EXISTS raw_select (id bigint PRIMARY KEY, payload text NOT NULL);
		INSERT INTO raw_select SELECT i, repeat('x', 100) || i FROM generate_series(0, `+strconv.Itoa(rawRows-1)+`) i ON CONFLICT DO NOTHING;
		ANALYZE raw_select;`)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("create the raw baseline's tables: %w", err)
	}
	return &RawDB{pool: pool, rows: rawRows}, nil
}

// Close closes the pool.
func (r *RawDB) Close() { r.pool.Close() }

// Insert is one single-row INSERT, committed on its own.
func (r *RawDB) Insert() Op {
	payload := string(bytes.Repeat([]byte("p"), 100))
	return func(ctx context.Context, w *Worker) error {
		_, err := r.pool.Exec(ctx, "INSERT INTO raw_insert (payload, created) VALUES ($1, now())", payload)
		return err
	}
}

// Select reads one row by primary key.
func (r *RawDB) Select() Op {
	return func(ctx context.Context, w *Worker) error {
		var payload string
		return r.pool.QueryRow(ctx, "SELECT payload FROM raw_select WHERE id = $1", w.Rand.IntN(r.rows)).Scan(&payload)
	}
}
