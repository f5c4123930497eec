// GET /v1/features/{set}/{key}: the latest record of one key, rendered by the set's schema.

#include <charconv>
#include <cmath>
#include <exception>

#include <spdlog/spdlog.h>

#include "handlers.hpp"
#include "sluice/config/columns.hpp"
#include "sluice/core/clock.hpp"

namespace sluice::serve {

namespace {

// One stored value as JSON, following the field's declared type.
ordered_json render_value(field_type type, const value& v) {
    return std::visit(
        [type](const auto& x) -> ordered_json {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>) {
                return nullptr;
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                if (type == field_type::timestamp) return format_rfc3339_ms(x);
                return x;
            } else if constexpr (std::is_same_v<T, double>) {
                if (!std::isfinite(x)) return nullptr;
                return x;
            } else if constexpr (std::is_same_v<T, bool>) {
                return x;
            } else {
                if (type == field_type::json) {
                    ordered_json parsed = ordered_json::parse(x, nullptr, /*allow_exceptions=*/false);
                    if (!parsed.is_discarded()) return parsed;
                }
                return x;
            }
        },
        v);
}

std::optional<std::int64_t> parse_non_negative(const std::string& text) {
    std::int64_t out = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ec != std::errc{} || end != text.data() + text.size() || out < 0) return std::nullopt;
    return out;
}

// Everything the answer needs once the reader calls back, copied out of the request.
struct latest_query {
    const feature_set_config* set = nullptr;
    std::string key;
    std::vector<latest_column> columns;  // fields, then aggregations (latest_entry::values order)
    std::vector<std::size_t> fields;  // indices into columns, in declared order
    std::optional<std::int64_t> max_staleness_ms;
    std::optional<std::int64_t> as_of_ms;  // point-in-time lookup: ages are measured at this moment
};

response render_latest(const latest_query& q, const latest_entry& e) {
    const std::int64_t age = q.as_of_ms.value_or(now_ms()) - e.event_time_ms;
    const char* status = "PRESENT";
    if (q.set->ttl_ms > 0 && age > q.set->ttl_ms)
        status = "EXPIRED";
    else if (q.max_staleness_ms && age > *q.max_staleness_ms)
        status = "STALE";

    ordered_json values = ordered_json::object();
    for (std::size_t i : q.fields) {
        const latest_column& c = q.columns[i];
        // A field added to the schema after the entry was written has no value yet.
        values[c.name] = i < e.values.size() ? render_value(c.type, e.values[i]) : ordered_json(nullptr);
    }
    ordered_json body;
    body["feature_set"] = q.set->name;
    body["key"] = q.key;
    body["status"] = status;
    body["event_time"] = format_rfc3339_ms(e.event_time_ms);
    body["ingested_at"] = format_rfc3339_ms(e.ingested_at_ms);
    body["values"] = std::move(values);
    return json_response(http::status::ok, body);
}

void get_latest(const serve_context& ctx, const request_context& rc, const responder& respond) {
    const std::string& set_name = rc.param("set");
    const int set_index = ctx.cfg->find_set(set_name);
    if (set_index < 0) {
        respond(error_response(http::status::not_found, "feature_set_not_found",
                               "feature set '" + set_name + "' is not configured"));
        return;
    }
    latest_query q;
    q.set = &ctx.cfg->feature_sets[static_cast<std::size_t>(set_index)];
    q.key = rc.param("key");
    q.columns = latest_columns(*q.set);
    if (const std::string* text = rc.query_value("as_of")) {
        // RFC 3339, or epoch milliseconds.
        q.as_of_ms = parse_rfc3339(*text);
        if (!q.as_of_ms) q.as_of_ms = parse_non_negative(*text);
        if (!q.as_of_ms) {
            respond(error_response(http::status::bad_request, "bad_request",
                                   "as_of must be an RFC 3339 time or epoch milliseconds"));
            return;
        }
    }

    if (const std::string* text = rc.query_value("max_staleness_ms")) {
        q.max_staleness_ms = parse_non_negative(*text);
        if (!q.max_staleness_ms) {
            respond(error_response(http::status::bad_request, "bad_request",
                                   "max_staleness_ms must be a non-negative integer"));
            return;
        }
    }

    if (const std::string* list = rc.query_value("fields")) {
        std::vector<bool> wanted(q.columns.size(), false);
        std::size_t pos = 0;
        while (pos <= list->size()) {
            std::size_t comma = list->find(',', pos);
            if (comma == std::string::npos) comma = list->size();
            const std::string name = list->substr(pos, comma - pos);
            pos = comma + 1;
            if (name.empty()) continue;
            bool found = false;
            for (std::size_t i = 0; i < q.columns.size() && !found; ++i) {
                if (q.columns[i].name == name) {
                    wanted[i] = true;
                    found = true;
                }
            }
            if (!found) {
                respond(error_response(http::status::bad_request, "unknown_field",
                                       "feature set '" + q.set->name + "' has no field '" + name + "'"));
                return;
            }
        }
        for (std::size_t i = 0; i < wanted.size(); ++i)
            if (wanted[i]) q.fields.push_back(i);
    } else {
        for (std::size_t i = 0; i < q.columns.size(); ++i) q.fields.push_back(i);
    }

    if (ctx.reader == nullptr) {
        respond(error_response(http::status::service_unavailable, "store_unavailable", "no feature store is configured"));
        return;
    }

    std::string key = q.key;
    const auto as_of = q.as_of_ms;
    // The reader may call back inline or from one of its threads; nothing here may throw out.
    auto on_answer = [q = std::move(q), respond](result<std::optional<latest_entry>> r) {
            try {
                if (!r.ok()) {
                    respond(error_response(http::status::service_unavailable, "store_unavailable", r.message()));
                } else if (!r.value()) {
                    respond(error_response(http::status::not_found, "key_not_found",
                                           "no record for key '" + q.key + "' in feature set '" + q.set->name + "'"));
                } else {
                    respond(render_latest(q, *r.value()));
                }
            } catch (const std::exception& e) {
                http_logger()->error("http: rendering {}/{} failed: {}", q.set->name, q.key, e.what());
                respond(error_response(http::status::internal_server_error, "internal_error", "internal error"));
            }
        };
    if (as_of)
        ctx.reader->get_as_of(static_cast<std::uint32_t>(set_index), std::move(key), *as_of, std::move(on_answer));
    else
        ctx.reader->get_latest(static_cast<std::uint32_t>(set_index), std::move(key), std::move(on_answer));
}

}  // namespace

void add_feature_routes(router& routes, const serve_context& ctx) {
    routes.add(http::verb::get, "/v1/features/{set}/{key}", "read",
               [ctx](const request_context& rc, const responder& respond) { get_latest(ctx, rc, respond); });
}

}  // namespace sluice::serve
