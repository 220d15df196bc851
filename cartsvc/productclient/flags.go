package productclient

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"
)

// RegisterFlags registers the flags of the productsvc client on fs; they
// fill c when fs is parsed: --product-url, --product-timeout,
// --product-cache-ttl and the breaker's --product-breaker-failures,
// --product-breaker-open and --product-breaker-open-max.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.BaseURL, "product-url", "", "base URL of productsvc, e.g. http://localhost:8081, or several comma-separated (one per replica: a failed attempt is retried on another) (required)")
	fs.DurationVar(&c.CallTimeout, "product-timeout", DefaultCallTimeout, "deadline of each call to productsvc")
	fs.DurationVar(&c.TTL, "product-cache-ttl", DefaultTTL, "how long product data is served from cache before productsvc is asked again")
	c.BreakerFailures = DefaultBreakerFailures
	fs.Func("product-breaker-failures", fmt.Sprintf("consecutive failed calls to productsvc that open the circuit breaker (default %d)", DefaultBreakerFailures), func(s string) error {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 0 {
			return errors.New("must be a positive number of calls")
		}
		c.BreakerFailures = uint32(n)
		return nil
	})
	fs.DurationVar(&c.BreakerOpen, "product-breaker-open", DefaultBreakerOpen, "how long the open breaker waits before one probe call; each failed probe doubles it, up to --product-breaker-open-max")
	fs.DurationVar(&c.BreakerOpenMax, "product-breaker-open-max", DefaultBreakerOpenMax, "the longest the breaker waits between probes")
}

// Validate checks the values the flags set.
func (c *Config) Validate() error {
	if c.BaseURL == "" {
		return errors.New("--product-url (or PRODUCT_URL) is required: productsvc's base URL, e.g. http://localhost:8081")
	}
	if _, err := splitURLs(c.BaseURL); err != nil {
		return fmt.Errorf("--product-url (or PRODUCT_URL): %w; want productsvc's base URL, e.g. http://localhost:8081, or several comma-separated", err)
	}
	for name, d := range map[string]time.Duration{
		"product-timeout": c.CallTimeout, "product-cache-ttl": c.TTL,
		"product-breaker-open": c.BreakerOpen, "product-breaker-open-max": c.BreakerOpenMax,
	} {
		if d <= 0 {
			return fmt.Errorf("--%s: must be positive, got %s", name, d)
		}
	}
	if c.BreakerOpenMax < c.BreakerOpen {
		return fmt.Errorf("--product-breaker-open-max: %s is shorter than --product-breaker-open %s", c.BreakerOpenMax, c.BreakerOpen)
	}
	return nil
}
