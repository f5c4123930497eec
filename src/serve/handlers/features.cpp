// Feature reads: GET /v1/features/{set}/{key} (one key, latest or as of a moment) and
// POST /v1/features/lookup (many keys of one set, in the order asked).

#include <exception>

#include <spdlog/spdlog.h>

#include "common.hpp"
#include "handlers.hpp"
#include "sluice/core/clock.hpp"

namespace sluice::serve {

namespace {

// Everything the answer needs once the reader calls back, copied out of the request.
struct read_options {
    std::vector<std::size_t> columns;  // empty: all of the set's (not copied per request)
    const std::vector<std::size_t>& of(const set_view& view) const { return columns.empty() ? view.all : columns; }
    std::optional<std::int64_t> max_staleness_ms;
    std::optional<std::int64_t> as_of_ms;  // point-in-time lookup: ages are measured at this moment
};

response store_unavailable(const std::string& message) {
    return error_response(http::status::service_unavailable, "store_unavailable", message);
}

void get_one(const serve_context& ctx, const set_catalog& catalog, const request_context& rc,
             const responder& respond) {
    const set_view* view = catalog.find(rc.param("set"));
    if (!view) return respond(unknown_set(rc.param("set")));
    read_options opt;
    if (const std::string* text = rc.query_value("as_of")) {
        opt.as_of_ms = parse_time(*text);
        if (!opt.as_of_ms) return respond(bad_request("as_of must be an RFC 3339 time or epoch milliseconds"));
    }
    if (const std::string* text = rc.query_value("max_staleness_ms")) {
        opt.max_staleness_ms = parse_non_negative(*text);
        if (!opt.max_staleness_ms) return respond(bad_request("max_staleness_ms must be a non-negative integer"));
    }
    if (const std::string* list = rc.query_value("fields")) {
        std::vector<std::string> names;
        std::size_t pos = 0;
        while (pos <= list->size()) {
            std::size_t comma = list->find(',', pos);
            if (comma == std::string::npos) comma = list->size();
            names.push_back(list->substr(pos, comma - pos));
            pos = comma + 1;
        }
        auto chosen = select_columns(*view, names);
        if (!chosen) return respond(error_response(http::status::bad_request, "unknown_field", chosen.message()));
        opt.columns = std::move(chosen.value());
    }
    if (ctx.reader == nullptr) return respond(store_unavailable("no feature store is configured"));

    std::string key = rc.param("key");
    // The reader may call back inline or from one of its threads; nothing here may throw out.
    auto on_answer = [view, key, opt, respond](result<std::optional<latest_entry>> r) {
        try {
            if (!r.ok()) return respond(store_unavailable(r.message()));
            if (!r.value())
                return respond(error_response(http::status::not_found, "key_not_found",
                                              "no record for key '" + key + "' in feature set '" + view->set->name + "'"));
            const latest_entry& e = *r.value();
            std::string out;
            out.reserve(160 + 32 * opt.of(*view).size());
            out += "{\"feature_set\":";
            append_json_string(out, view->set->name);
            out += ",\"key\":";
            append_json_string(out, key);
            out += ",\"status\":\"";
            out += age_status(*view, e, opt.as_of_ms.value_or(now_ms()), opt.max_staleness_ms);
            out += "\",\"event_time\":\"";
            out += format_rfc3339_ms(e.event_time_ms);
            out += "\",\"ingested_at\":\"";
            out += format_rfc3339_ms(e.ingested_at_ms);
            out += "\",\"values\":";
            append_values_json(out, *view, opt.of(*view), e);
            out += '}';
            respond(json_text_response(http::status::ok, std::move(out)));
        } catch (const std::exception& ex) {
            http_logger()->error("http: rendering {}/{} failed: {}", view->set->name, key, ex.what());
            respond(error_response(http::status::internal_server_error, "internal_error", "internal error"));
        }
    };
    if (opt.as_of_ms)
        ctx.reader->get_as_of(view->index, rc.param("key"), *opt.as_of_ms, std::move(on_answer));
    else
        ctx.reader->get_latest(view->index, rc.param("key"), std::move(on_answer));
}

void lookup(const serve_context& ctx, const set_catalog& catalog, const request_context& rc, const responder& respond) {
    if (auto bad = check_content_type(rc.req, {"application/json"})) return respond(std::move(*bad));
    const auto body = nlohmann::json::parse(rc.req.body(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) return respond(bad_request("the body must be a JSON object"));
    const auto set_it = body.find("feature_set");
    if (set_it == body.end() || !set_it->is_string()) return respond(bad_request("\"feature_set\" (a string) is required"));
    const set_view* view = catalog.find(set_it->get<std::string>());
    if (!view) return respond(unknown_set(set_it->get<std::string>()));

    const auto keys_it = body.find("keys");
    if (keys_it == body.end() || !keys_it->is_array()) return respond(bad_request("\"keys\" (an array of strings) is required"));
    const auto max_keys = static_cast<std::size_t>(ctx.cfg->http.max_lookup_keys);
    if (keys_it->size() > max_keys)
        return respond(error_response(http::status::bad_request, "too_many_keys",
                                      std::to_string(keys_it->size()) + " keys asked; at most " +
                                          std::to_string(max_keys) + " per request (http.max_lookup_keys)"));
    std::vector<std::string> keys;
    keys.reserve(keys_it->size());
    for (const auto& k : *keys_it) {
        if (k.is_string())
            keys.push_back(k.get<std::string>());
        else if (k.is_number_integer())
            keys.push_back(k.dump());  // an integer entity id, as an event's key would be written
        else
            return respond(bad_request("every key must be a string or an integer"));
    }

    read_options opt;
    if (auto f = body.find("fields"); f != body.end() && !f->is_null()) {
        if (!f->is_array()) return respond(bad_request("\"fields\" must be an array of field names"));
        std::vector<std::string> names;
        for (const auto& n : *f) {
            if (!n.is_string()) return respond(bad_request("\"fields\" must be an array of field names"));
            names.push_back(n.get<std::string>());
        }
        auto chosen = select_columns(*view, names);
        if (!chosen) return respond(error_response(http::status::bad_request, "unknown_field", chosen.message()));
        opt.columns = std::move(chosen.value());
    }
    if (auto a = body.find("as_of"); a != body.end() && !a->is_null()) {
        opt.as_of_ms = parse_json_time(*a);
        if (!opt.as_of_ms) return respond(bad_request("as_of must be an RFC 3339 time or epoch milliseconds"));
    }
    if (auto m = body.find("max_staleness_ms"); m != body.end() && !m->is_null()) {
        if (!m->is_number_integer() || m->get<std::int64_t>() < 0)
            return respond(bad_request("max_staleness_ms must be a non-negative integer"));
        opt.max_staleness_ms = m->get<std::int64_t>();
    }
    if (ctx.reader == nullptr) return respond(store_unavailable("no feature store is configured"));

    auto on_answers = [view, keys, opt, respond](std::vector<result<std::optional<latest_entry>>> answers) {
        try {
            const std::int64_t at = opt.as_of_ms.value_or(now_ms());
            std::string out;
            out.reserve(64 + answers.size() * (96 + 32 * opt.of(*view).size()));
            out += "{\"feature_set\":";
            append_json_string(out, view->set->name);
            out += ",\"results\":[";
            for (std::size_t i = 0; i < answers.size(); ++i) {
                // One failed key fails the request: a partial answer would look like NOT_FOUND.
                if (!answers[i].ok()) return respond(store_unavailable(answers[i].message()));
                if (i) out += ',';
                out += "{\"key\":";
                append_json_string(out, keys[i]);
                const auto& e = answers[i].value();
                if (!e) {
                    out += ",\"status\":\"NOT_FOUND\",\"event_time\":null,\"values\":null}";
                    continue;
                }
                out += ",\"status\":\"";
                out += age_status(*view, *e, at, opt.max_staleness_ms);
                out += "\",\"event_time\":\"";
                out += format_rfc3339_ms(e->event_time_ms);
                out += "\",\"values\":";
                append_values_json(out, *view, opt.of(*view), *e);
                out += '}';
            }
            out += "]}";
            respond(json_text_response(http::status::ok, std::move(out)));
        } catch (const std::exception& ex) {
            http_logger()->error("http: rendering a lookup of {} failed: {}", view->set->name, ex.what());
            respond(error_response(http::status::internal_server_error, "internal_error", "internal error"));
        }
    };
    ctx.reader->get_latest_many(view->index, std::move(keys), opt.as_of_ms, std::move(on_answers));
}

}  // namespace

void add_read_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog) {
    routes.add(http::verb::get, "/v1/features/{set}/{key}", "read",
               [ctx, catalog](const request_context& rc, const responder& respond) { get_one(ctx, *catalog, rc, respond); });
    routes.add(http::verb::post, "/v1/features/lookup", "read",
               [ctx, catalog](const request_context& rc, const responder& respond) { lookup(ctx, *catalog, rc, respond); });
}

}  // namespace sluice::serve
