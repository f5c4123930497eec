#pragma once
// What the resource handlers share: each feature set's columns (computed once, not per request),
// rendering stored values as JSON, the status of a record's age, and parsing of times, numbers
// and field lists.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../http/router.hpp"
#include "sluice/config/columns.hpp"
#include "sluice/core/value_codec.hpp"
#include "sluice/serve/services.hpp"

namespace sluice::serve {

/// One feature set as the API sees it.
struct set_view {
    std::uint32_t index = 0;
    const feature_set_config* set = nullptr;
    std::vector<latest_column> columns;  // fields, then aggregations (latest_entry::values order)
    std::unordered_map<std::string, std::size_t> column_of;  // name → index into columns
    std::vector<std::size_t> all;        // 0 .. columns.size()-1
};

/// Every configured set, built once at start; read-only afterwards.
class set_catalog {
public:
    /// versions: which version a bare name reads (null: names are unique, every set version 1).
    set_catalog(const config& cfg, const version_switch* versions);
    /// The set a route names: "S" (the version serving it) or "S@N".
    const set_view* find(std::string_view name) const;
    const std::vector<set_view>& sets() const { return sets_; }

private:
    std::vector<set_view> sets_;
    const version_switch* versions_;
};

/// A stored value as JSON, following its column's type (timestamps as RFC 3339, json as JSON).
ordered_json render_value(field_type type, const value& v);

/// {"name": value, ...} for the chosen columns; a column missing from the entry is null.
ordered_json render_values(const set_view& view, const std::vector<std::size_t>& columns, const latest_entry& e);

/// The same JSON text as dump_json of the above, written straight onto `out` (no tree of nodes):
/// the read routes answer with these (strings through append_json_string of value_codec.hpp).
void append_value_json(std::string& out, field_type type, const value& v);
void append_values_json(std::string& out, const set_view& view, const std::vector<std::size_t>& columns,
                        const latest_entry& e);
/// A 200 (or other) answer whose body is JSON text already.
response json_text_response(http::status status, std::string body);

/// PRESENT, EXPIRED (older than the set's TTL) or STALE (older than max_staleness_ms), measured
/// at `at_ms` (now, or the as_of moment).
const char* age_status(const set_view& view, const latest_entry& e, std::int64_t at_ms,
                       std::optional<std::int64_t> max_staleness_ms);

/// A non-negative decimal integer, or nullopt.
std::optional<std::int64_t> parse_non_negative(std::string_view text);
/// RFC 3339, or epoch milliseconds.
std::optional<std::int64_t> parse_time(std::string_view text);
/// A JSON time: an RFC 3339 string, or epoch milliseconds as a number or a string.
std::optional<std::int64_t> parse_json_time(const nlohmann::json& j);

/// The columns named, in the set's order; an error message names the first unknown one.
result<std::vector<std::size_t>> select_columns(const set_view& view, const std::vector<std::string>& names);

/// Runs work on a lookup thread (it blocks on PostgreSQL or the file system), or inline without a
/// pool; answers 503 when the pool's backlog is full.
void off_io_thread(const serve_context& ctx, std::function<void()> work, const responder& respond);

/// 404 feature_set_not_found.
response unknown_set(std::string_view name);
/// 400 bad_request with the message.
response bad_request(std::string_view message);

/// For POST bodies: nullopt when the Content-Type is acceptable (absent, or one of `accepted`,
/// parameters like charset ignored; where JSON is accepted, also curl's default form type, as
/// `curl -d` sends JSON with it), else the 415 answer.
std::optional<response> check_content_type(const request& req, std::initializer_list<std::string_view> accepted);

}  // namespace sluice::serve
