#pragma once
// Windowed aggregations seen from outside the daemon (README, "Config"): the aggregations a test declares on the `user_activity` set (stack.hpp), a brute-force
// model of their values written here independently of the daemon's code, and the comparison of
// what the daemon serves (API JSON, PostgreSQL text, Redis JSON text) with that model.
//
// The definition the model implements (include/sluice/preprocess/aggregator.hpp): a window W is
// cut into 60 tiles of W/60 aligned to the Unix epoch (tile = floor(t / (W/60))). The value at T
// covers the events whose tile is one of the 60 tiles ending with T's tile and whose event time
// is <= T. Null field values do not count. count → int, sum → the field's type, avg → double,
// min/max → the field's type, last → the value of the newest event (of equal times, the one
// produced last); an empty window gives 0 for count and sum, null for the others.
//
// Everything here runs on the test thread.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "integration/support/stack.hpp"
#include "integration/support/stream.hpp"

namespace sluice::it {

enum class agg_kind { count, sum, avg, min, max, last };
/// The `user_activity` fields an aggregation can read.
enum class agg_source { clicks, spend, country, premium };

struct agg_spec {
    std::string name;    // e.g. "spend_sum_1h"
    agg_source field = agg_source::spend;
    agg_kind op = agg_kind::sum;
    std::string window;  // as in the config: "1h", "7d", "1m"
    std::int64_t window_ms = 0;
};

/// {name, field, op, window}; window_ms is parsed from `window` (m, h or d).
agg_spec make_agg(std::string name, agg_source field, agg_kind op, std::string window);

const char* to_string(agg_kind op);
const char* to_string(agg_source field);

/// user_activity_config() with `aggregations` and `allowed_lateness` on its one set, and the
/// PostgreSQL schema and Redis key prefix both set to `schema` (a test of its own, a schema of its
/// own: the daemon rebuilds aggregation state from all of its history).
nlohmann::json aggregation_config(const test_stack& stack, const std::string& group, int http_port,
                                  const std::string& topic, const std::string& schema,
                                  const std::vector<agg_spec>& aggs, const std::string& allowed_lateness);

/// Queues `e` (event_message, epoch ms event time unless `ts_as_text`) to `topic`, keyed by its
/// key; sets e.id.
void produce_event(kafka_cluster& kafka, const std::string& topic, stream_event& e, bool ts_as_text = false);

/// One event as the model keeps it: the produced event and its place in its key's production
/// order (the order the daemon processes a key's records in).
struct model_event {
    const stream_event* e = nullptr;
    std::size_t seq = 0;
};

/// The tiled value of `a` at `at_ms` over `events` (the accepted events of one key, in
/// production order), as JSON: null, integer, float, string or bool.
nlohmann::json tiled_value(const agg_spec& a, const std::vector<model_event>& events, std::int64_t at_ms);
/// The same over an exact sliding window (at_ms - W, at_ms] (no tiles), for the tile-error figures.
nlohmann::json exact_value(const agg_spec& a, const std::vector<model_event>& events, std::int64_t at_ms);
/// Every aggregation's tiled value at at_ms, as an object name → value.
nlohmann::json tiled_values(const std::vector<agg_spec>& aggs, const std::vector<model_event>& events,
                            std::int64_t at_ms);

/// Why `actual` (a JSON value served or stored) is not `expected` for aggregation `a`; nothing
/// when they match: exactly for count, min, max and last and for sums of ints, within 1e-9
/// relative for sum and avg of doubles. A double served with an integer-looking text is fine.
std::optional<std::string> agg_mismatch(const agg_spec& a, const nlohmann::json& expected,
                                        const nlohmann::json& actual);

/// Compares the aggregations in `values` (an API "values" object, or a stored row turned into
/// one) with the model at `at_lo`, and when that differs and at_hi != at_lo, at `at_hi` (the
/// daemon computed at a moment in [at_lo, at_hi]; both ends are the model's only states in
/// between when no tile edge of a window but the nearest lies inside). Returns the mismatches,
/// each prefixed with `what`.
std::vector<std::string> compare_aggs(const std::vector<agg_spec>& aggs, const nlohmann::json& values,
                                      const std::vector<model_event>& events, std::int64_t at_lo, std::int64_t at_hi,
                                      const std::string& what);

/// The newest event among `events` with event time <= at_ms (of equal times, the first
/// produced), or nullptr.
const stream_event* newest_at(const std::vector<model_event>& events, std::int64_t at_ms);

/// Mismatches between the plain fields (clicks, spend, country, premium) and event_time of an
/// API answer `body` and event `e`.
std::vector<std::string> field_mismatches(const nlohmann::json& body, const stream_event& e, const std::string& what);

/// One GET of /v1/features/user_activity/<key>[?query] with the wall-clock moments just before
/// the request and just after the answer.
struct timed_answer {
    int status = 0;
    nlohmann::json body;  // discarded when not JSON
    std::string raw;
    std::int64_t sent_ms = 0;
    std::int64_t received_ms = 0;
};
timed_answer get_features(int http_port, const std::string& key, const std::string& query = "");

/// True when some aggregation's tile changes between a and b (then the windows moved between them).
bool tile_edge_between(const std::vector<agg_spec>& aggs, std::int64_t a, std::int64_t b);

/// A stored text value (PostgreSQL text output, `pg_null` for NULL) of aggregation `a` as JSON.
nlohmann::json pg_text_to_json(const agg_spec& a, const std::string& text);

/// Largest |x| of the numbers in a JSON value (0 for non-numbers), for the printed figures.
double abs_number(const nlohmann::json& v);

}  // namespace sluice::it
