// Feast's feature-server routes, answered as Feast's Python feature server answers them
// (sdk/python/feast/feature_server.py, feature_server_utils.py, utils.py at feast-dev/feast
// f0bc0700), so a Feast client, Feast's remote online store and the Feast operator use Sluice
// unchanged:
//
//   POST /get-online-features {"features": ["set:field", ...] | "feature_service": name,
//                              "entities": {"user_id": [v1, v2, ...], ...}, "full_feature_names"?: bool}
//   → {"results": [{"values": [...], "statuses": [...], "event_timestamps": [...]}, ...],
//      "metadata": {"feature_names": ["user_id", "field", ...]}}
//   GET /health → 200, empty (the operator's startup, liveness and readiness probe)
//
// One result per name of feature_names (the entity columns first, in request order), each with one
// value per entity row (utils.py:1755-1762). Statuses as Feast's Python server gives them: PRESENT
// (the value may be null: utils.py:1712-1744 never emits NULL_VALUE), NOT_FOUND (no record for the
// key); and OUTSIDE_MAX_AGE with the value kept when the record is older than the set's TTL (what
// Feast's Go and Java servers give; its Python online path has no TTL check). Event timestamps are
// RFC 3339 with Feast's adaptive precision ("...:05Z" for a whole second, ".123Z" otherwise;
// fsu.py:131-152), "1970-01-01T00:00:00Z" for the entity columns and missing rows.
//
// Errors in Feast's shapes, so Feast's client raises the same exception (rest_error_handler.py:77-109):
// a Feast error is its status with the body a JSON *string* holding {"module", "class", "message"}
// (errors.py:38-51, feature_server.py:1070-1084); any other failure is 500 with the message as a
// JSON string; a body the request model refuses is FastAPI's 422 {"detail": [...]}.

#include <algorithm>
#include <atomic>
#include <functional>
#include <optional>
#include <exception>
#include <mutex>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "common.hpp"
#include "handlers.hpp"
#include "sluice/core/clock.hpp"

namespace sluice::serve {

namespace {

constexpr const char* epoch_zero = "1970-01-01T00:00:00Z";
// Feast's project: the environment (the schema and Redis prefix Sluice's data lives in).
const std::string& project_of(const serve_context& ctx) { return ctx.cfg->environment; }

// A string as Python's json.dumps writes it by default: ASCII only (\uXXXX, surrogate pairs).
void append_python_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    auto unit = [&](unsigned u) {
        out += "\\u";
        for (int shift = 12; shift >= 0; shift -= 4) out += hex[(u >> shift) & 15];
    };
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default:
                    if (c < 0x20) unit(c);
                    else out += static_cast<char>(c);
            }
            ++i;
            continue;
        }
        // A UTF-8 sequence (invalid bytes become U+FFFD, as the JSON library replaces them).
        unsigned cp = 0xFFFD;
        std::size_t len = 1;
        if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
        else len = 0;
        bool ok = len > 0 && i + len <= s.size();
        for (std::size_t k = 1; ok && k < len; ++k) {
            const unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) ok = false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (!ok) {
            cp = 0xFFFD;
            len = 1;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            unit(0xD800 + (cp >> 10));
            unit(0xDC00 + (cp & 0x3FF));
        } else {
            unit(cp);
        }
        i += len;
    }
    out += '"';
}

}  // namespace

response feast_error(unsigned status, std::string_view cls, std::string_view message) {
    // FeastError.to_error_detail(): json.dumps({"module", "class", "message"}) -> a str, which the
    // server's JSONResponse encodes again as a JSON string.
    std::string detail = "{\"module\": \"feast.errors\", \"class\": ";
    append_python_json_string(detail, cls);
    detail += ", \"message\": ";
    append_python_json_string(detail, message);
    detail += '}';
    std::string body;
    append_json_string(body, detail);
    return json_text_response(static_cast<http::status>(status), std::move(body));
}

response feast_failure(std::string_view message) {
    std::string body;
    append_json_string(body, message);
    return json_text_response(http::status::internal_server_error, std::move(body));
}

response feast_invalid(std::string_view type, const ordered_json& loc, std::string_view msg, const ordered_json& input) {
    ordered_json item = {{"type", type}, {"loc", loc}, {"msg", msg}, {"input", input}};
    return json_text_response(static_cast<http::status>(422), dump_json(ordered_json{{"detail", ordered_json::array({item})}}));
}

std::string feast_timestamp(std::int64_t epoch_ms) {
    std::string t = format_rfc3339_ms(epoch_ms);  // 2026-11-21T08:27:00.123Z
    if (epoch_ms % 1000 == 0 && t.size() > 5 && t.compare(t.size() - 5, 5, ".000Z") == 0) t.replace(t.size() - 5, 5, "Z");
    return t;
}

namespace {

struct wanted_set {
    const set_view* view = nullptr;
    std::vector<std::size_t> columns;       // columns asked for, in request order
    std::vector<std::size_t> result_slots;  // where each goes among the results (after the entities)
    std::vector<std::string> keys;          // the entity column's values for this set, as keys
};

// The state of one request while its feature sets are read (maybe on several threads).
struct feast_query {
    std::vector<wanted_set> sets;
    std::size_t rows = 0;
    std::vector<const nlohmann::json*> entity_columns;  // as the client sent them, echoed first
    nlohmann::json body;                                 // owns what entity_columns point into
    ordered_json names;
    std::vector<std::vector<result<std::optional<latest_entry>>>> answers;  // per set
    std::atomic<std::size_t> left{0};
    responder respond;
};

// The answer is written straight into the body: a tree of ordered_json nodes (three arrays per
// feature, one node per value) cost more than the rest of the request together at 250 features.
void answer(feast_query& q) {
    try {
        const std::size_t rows = q.rows;
        const std::int64_t now = now_ms();
        // Per set and entity row, once: the entry, its event time as text, whether it is past the TTL.
        struct row_state {
            const latest_entry* entry = nullptr;
            std::string time = epoch_zero;
            bool expired = false;
        };
        std::vector<std::vector<row_state>> state(q.sets.size(), std::vector<row_state>(rows));
        for (std::size_t s = 0; s < q.sets.size(); ++s) {
            const auto ttl = q.sets[s].view->set->ttl_ms;
            for (std::size_t r = 0; r < rows; ++r) {
                const auto& a = q.answers[s][r];
                if (!a.ok()) return q.respond(feast_failure(a.message()));
                if (!a.value()) continue;
                row_state& st = state[s][r];
                st.entry = &*a.value();
                st.time = feast_timestamp(st.entry->event_time_ms);
                st.expired = ttl > 0 && now - st.entry->event_time_ms > ttl;
            }
        }
        // Which (set, column) fills each result after the entity column.
        std::vector<std::pair<std::size_t, std::size_t>> source(q.names.size());
        for (std::size_t s = 0; s < q.sets.size(); ++s)
            for (std::size_t c = 0; c < q.sets[s].columns.size(); ++c) source[q.sets[s].result_slots[c]] = {s, c};

        const auto list = [&](std::string& out, auto&& item) {
            out += '[';
            for (std::size_t r = 0; r < rows; ++r) {
                if (r) out += ',';
                item(r);
            }
            out += ']';
        };
        std::string out;
        out.reserve(64 + q.names.size() * (64 + rows * 48));
        // Feast writes "results" before "metadata" (feature_server_utils.py:39-62).
        out += "{\"results\":[";
        const std::size_t entities = q.entity_columns.size();
        for (std::size_t e = 0; e < entities; ++e) {
            if (e) out += ',';
            out += "{\"values\":";
            out += q.entity_columns[e]->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            out += ",\"statuses\":";
            list(out, [&](std::size_t) { out += "\"PRESENT\""; });
            out += ",\"event_timestamps\":";
            list(out, [&](std::size_t) { out.append("\"").append(epoch_zero).append("\""); });
            out += '}';
        }
        for (std::size_t slot = entities; slot < source.size(); ++slot) {
            const auto [s, c] = source[slot];
            const wanted_set& w = q.sets[s];
            const std::size_t col = w.columns[c];
            const auto& rs = state[s];
            const auto status = [&](std::size_t r) -> const char* {
                const row_state& st = rs[r];
                if (!st.entry) return "NOT_FOUND";
                return st.expired ? "OUTSIDE_MAX_AGE" : "PRESENT";
            };
            out += ",{\"values\":";
            list(out, [&](std::size_t r) {
                if (!rs[r].entry || col >= rs[r].entry->values.size()) out += "null";
                else out += dump_json(render_value(w.view->columns[col].type, rs[r].entry->values[col]));
            });
            out += ",\"statuses\":";
            list(out, [&](std::size_t r) { out.append("\"").append(status(r)).append("\""); });
            out += ",\"event_timestamps\":";
            list(out, [&](std::size_t r) { out.append("\"").append(rs[r].time).append("\""); });
            out += '}';
        }
        out += "],\"metadata\":{\"feature_names\":";
        out += dump_json(q.names);
        out += '}';
        out += '}';
        response res{http::status::ok, 11};
        res.set(http::field::content_type, "application/json");
        res.body() = std::move(out);
        q.respond(std::move(res));
    } catch (const std::exception& ex) {
        http_logger()->error("http: rendering a Feast answer failed: {}", ex.what());
        q.respond(feast_failure("internal error"));
    }
}

// The body as FastAPI reads it for a request model: JSON, an object; else its 422.
std::optional<response> model_body(const request& req, nlohmann::json& body) {
    body = nlohmann::json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded())
        return feast_invalid("json_invalid", {"body", 0}, "JSON decode error", ordered_json::object());
    if (!body.is_object())
        return feast_invalid("model_attributes_type", {"body"},
                             "Input should be a valid dictionary or object to extract fields from",
                             ordered_json::parse(body.dump()));
    return std::nullopt;
}

void get_online_features(const serve_context& ctx, const set_catalog& catalog, const request_context& rc,
                         const responder& respond) {
    if (auto bad = check_content_type(rc.req, {"application/json"})) return respond(std::move(*bad));
    auto q = std::make_shared<feast_query>();
    // The request model (feature_server.py:122-127), refused as FastAPI refuses it.
    if (auto bad = model_body(rc.req, q->body)) return respond(std::move(*bad));
    const nlohmann::json& body = q->body;
    const auto entities = body.find("entities");
    if (entities == body.end())
        return respond(feast_invalid("missing", {"body", "entities"}, "Field required", ordered_json::parse(body.dump())));
    if (!entities->is_object())
        return respond(feast_invalid("dict_type", {"body", "entities"}, "Input should be a valid dictionary",
                                     ordered_json::parse(entities->dump())));
    for (const auto& [name, column] : entities->items())
        if (!column.is_array())
            return respond(feast_invalid("list_type", {"body", "entities", name}, "Input should be a valid list",
                                         ordered_json::parse(column.dump())));
    bool full_names = false;
    if (auto f = body.find("full_feature_names"); f != body.end()) {
        if (!f->is_boolean())
            return respond(feast_invalid("bool_type", {"body", "full_feature_names"}, "Input should be a valid boolean",
                                         ordered_json::parse(f->dump())));
        full_names = f->get<bool>();
    }
    std::vector<std::string> refs;
    if (auto f = body.find("features"); f != body.end()) {
        if (!f->is_array())
            return respond(feast_invalid("list_type", {"body", "features"}, "Input should be a valid list",
                                         ordered_json::parse(f->dump())));
        for (std::size_t i = 0; i < f->size(); ++i) {
            if (!(*f)[i].is_string())
                return respond(feast_invalid("string_type", {"body", "features", i}, "Input should be a valid string",
                                             ordered_json::parse((*f)[i].dump())));
            refs.push_back((*f)[i].get<std::string>());
        }
    }
    // A feature service wins over "features" when both are given (feature_server.py:276-283).
    if (auto svc = body.find("feature_service"); svc != body.end() && !svc->is_null()) {
        if (!svc->is_string())
            return respond(feast_invalid("string_type", {"body", "feature_service"}, "Input should be a valid string",
                                         ordered_json::parse(svc->dump())));
        const std::string name = svc->get<std::string>();
        if (!name.empty()) {
            const auto& services = ctx.cfg->feature_services;
            const auto found = std::find_if(services.begin(), services.end(),
                                            [&](const feature_service_config& s) { return s.name == name; });
            if (found == services.end())
                return respond(feast_error(404, "FeatureServiceNotFoundException",
                                           "Feature service " + name + " does not exist in project " + project_of(ctx)));
            refs = found->features;
        }
    }
    if (refs.empty()) return respond(feast_failure("No features specified for retrieval"));

    // The entity columns: each configured set's key field is one; an unknown column is an error
    // (Feast drops it silently; a typo should not read as "no such key").
    const auto is_key = [&](const std::string& column) {
        for (const auto& v : catalog.sets())
            if (v.set->key_field == column) return true;
        return false;
    };
    std::size_t rows = 0;
    bool first = true;
    for (const auto& [name, column] : entities->items()) {
        if (!is_key(name))
            return respond(feast_error(404, "EntityNotFoundException",
                                       "Entity " + name + " does not exist in project " + project_of(ctx)));
        if (!first && column.size() != rows) return respond(feast_failure("All entity rows must have the same columns."));
        rows = column.size();
        first = false;
        q->names.push_back(name);
        q->entity_columns.push_back(&column);
    }
    const auto max_rows = static_cast<std::size_t>(ctx.cfg->http.max_lookup_keys);
    if (rows > max_rows)
        return respond(feast_failure(std::to_string(rows) + " entity rows; at most " + std::to_string(max_rows) +
                                     " per request (http.max_lookup_keys)"));
    q->rows = rows;

    std::unordered_set<std::string> seen_names;
    for (const auto& n : q->names) seen_names.insert(n.get<std::string>());
    std::vector<std::string> collisions;
    std::size_t slot = q->names.size();
    for (const std::string& ref : refs) {
        const auto colon = ref.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == ref.size())
            return respond(feast_failure("Invalid feature reference '" + ref +
                                         "'. Expected format: 'feature_view:feature' or 'feature_view@version:feature'"));
        const std::string set_name = ref.substr(0, colon), field = ref.substr(colon + 1);
        const set_view* view = catalog.find(set_name);
        if (!view)
            return respond(feast_error(404, "FeatureViewNotFoundException",
                                       "Feature view " + set_name + " does not exist in project " + project_of(ctx)));
        auto col = view->column_of.find(field);
        if (col == view->column_of.end())
            return respond(feast_failure("'Feature " + field + " not found in projection " + set_name + "'"));
        const std::string name = full_names ? set_name + "__" + field : field;
        if (!seen_names.insert(name).second) {
            collisions.push_back(name);
            continue;
        }
        q->names.push_back(name);
        wanted_set* w = nullptr;
        for (auto& s : q->sets)
            if (s.view == view) w = &s;
        if (!w) {
            q->sets.push_back({view, {}, {}, {}});
            w = &q->sets.back();
        }
        w->columns.push_back(col->second);
        w->result_slots.push_back(slot++);
    }
    if (!collisions.empty()) {
        std::string list;
        for (const auto& c : collisions) list += (list.empty() ? "" : ", ") + c;
        return respond(feast_error(500, "FeatureNameCollisionError",
                                   "Duplicate features named " + list +
                                       " found.\nTo resolve this collision, either use the full feature name by setting "
                                       "'full_feature_names=True', or ensure that the features in question have different "
                                       "names."));
    }
    // Each set reads the keys of its own entity column.
    for (auto& w : q->sets) {
        const std::string& key = w.view->set->key_field;
        const auto column = entities->find(key);
        if (column == entities->end() || rows == 0) {
            std::string provided;
            for (const auto& [name, v] : entities->items()) provided += (provided.empty() ? "'" : ", '") + name + "'";
            return respond(feast_failure("Missing join key values for keys: ['" + key + "']. No values provided for keys: ['" +
                                         key + "']. Provided join_key_values: [" + provided + "]"));
        }
        for (const auto& v : *column) {
            if (v.is_string())
                w.keys.push_back(v.get<std::string>());
            else if (v.is_number_integer())
                w.keys.push_back(v.dump());
            else if (v.is_boolean())
                w.keys.push_back(v.get<bool>() ? "True" : "False");  // Python's str(), as Feast converts a String key
            else
                return respond(feast_failure("entity values of " + key + " must be strings or integers, got " +
                                             v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
        }
    }
    if (ctx.reader == nullptr) return respond(feast_failure("no feature store is configured"));

    q->respond = respond;
    q->answers.resize(q->sets.size());
    q->left.store(q->sets.size());
    for (std::size_t s = 0; s < q->sets.size(); ++s) {
        ctx.reader->get_latest_many(q->sets[s].view->index, q->sets[s].keys, std::nullopt,
                                    [q, s](std::vector<result<std::optional<latest_entry>>> a) {
                                        q->answers[s] = std::move(a);
                                        if (q->left.fetch_sub(1, std::memory_order_acq_rel) == 1) answer(*q);
                                    });
    }
}

// A timestamp as Python writes a naive UTC datetime ("2026-12-08 04:39:08.123456", isoformat()
// without a zone): Feast takes it as UTC (utils.py make_tzaware); so does Sluice, with a "Z".
nlohmann::json utc_if_naive(const nlohmann::json& v) {
    if (!v.is_string()) return v;
    const std::string& t = v.get_ref<const std::string&>();
    if (t.size() < 19 || (t[10] != 'T' && t[10] != ' ')) return v;
    const auto tail = t.find_first_of("Zz+-", 19);
    if (tail != std::string::npos) return v;
    return t + "Z";
}

// A columnar DataFrame ({"col": [...], ...}) as one JSON object per row, for `set`: the set's
// event-time field from "event_timestamp" when the frame names it so (Feast's default column), naive
// timestamps as UTC. nullopt (and `error` set) when the columns' lengths differ.
std::optional<std::vector<std::string>> frame_rows(const nlohmann::json& df, const feature_set_config& set, std::string& error) {
    std::size_t rows = 0;
    bool first = true;
    for (const auto& [name, column] : df.items()) {
        const std::size_t n = column.is_array() ? column.size() : 1;
        if (!first && n != rows) {
            error = "All arrays must be of the same length";  // pandas' message for pd.DataFrame(df)
            return std::nullopt;
        }
        rows = n;
        first = false;
    }
    const bool rename_time = !df.contains(set.event_time_field) && df.contains("event_timestamp");
    std::vector<std::string> out;
    out.reserve(rows);
    for (std::size_t r = 0; r < rows; ++r) {
        nlohmann::json row = nlohmann::json::object();
        for (const auto& [name, column] : df.items()) {
            const nlohmann::json& v = column.is_array() ? column[r] : column;
            const bool is_time = name == set.event_time_field || (rename_time && name == "event_timestamp");
            row[rename_time && name == "event_timestamp" ? set.event_time_field : name] = is_time ? utc_if_naive(v) : v;
        }
        out.push_back(row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    return out;
}

// Writes `payloads` to each set through the push path (validation, durability: as /v1/ingest), then
// calls done once with "" or why not everything was accepted.
void write_frames(const serve_context& ctx, std::vector<std::pair<std::uint32_t, std::vector<std::string>>> writes,
                  std::function<void(std::string)> done) {
    struct fan_in {
        std::mutex mutex;
        std::size_t left;
        std::string problems;
        std::function<void(std::string)> done;
    };
    auto f = std::make_shared<fan_in>();
    f->left = writes.size();
    f->done = std::move(done);
    if (writes.empty()) return f->done("");
    for (auto& [set, payloads] : writes) {
        const std::string name = ctx.cfg->feature_sets[set].display_name();
        ctx.ingest->push(set, std::move(payloads), [f, name](result<push_outcome> r) {
            std::string problem;
            if (!r.ok()) {
                problem = name + ": " + r.message();
            } else if (!r.value().errors.empty()) {
                problem = name + ": " + std::to_string(r.value().errors.size()) + " of " +
                          std::to_string(r.value().accepted + r.value().skipped + r.value().errors.size()) +
                          " rows rejected (kept as dead letters), the first: row " +
                          std::to_string(r.value().errors.front().first) + ": " + r.value().errors.front().second;
            }
            std::unique_lock lock(f->mutex);
            if (!problem.empty()) f->problems += (f->problems.empty() ? "" : "; ") + problem;
            if (--f->left > 0) return;
            std::string all = std::move(f->problems);
            lock.unlock();
            f->done(std::move(all));
        });
    }
}

// The write models (PushFeaturesRequest, WriteToFeatureStoreRequest: feature_server.py:79-91): a
// string under `name_key` and a "df" object, both required; else FastAPI's 422.
std::optional<response> frame_model(const nlohmann::json& body, const char* name_key) {
    for (const char* required : {name_key, "df"})
        if (!body.contains(required))
            return feast_invalid("missing", {"body", required}, "Field required", ordered_json::parse(body.dump()));
    if (!body[name_key].is_string())
        return feast_invalid("string_type", {"body", name_key}, "Input should be a valid string",
                             ordered_json::parse(body[name_key].dump()));
    if (!body["df"].is_object())
        return feast_invalid("dict_type", {"body", "df"}, "Input should be a valid dictionary",
                             ordered_json::parse(body["df"].dump()));
    return std::nullopt;
}

// POST /push (feature_server.py:812-908): {"push_source_name", "df", "to"?}; 200 with an empty body.
void push(const serve_context& ctx, const set_catalog& catalog, const request_context& rc, const responder& respond) {
    if (auto bad = check_content_type(rc.req, {"application/json"})) return respond(std::move(*bad));
    nlohmann::json body;
    if (auto bad = model_body(rc.req, body)) return respond(std::move(*bad));
    if (auto bad = frame_model(body, "push_source_name")) return respond(std::move(*bad));
    const std::string to = body.value("to", std::string("online"));
    if (to != "online" && to != "offline" && to != "online_and_offline")
        return respond(feast_failure(to + " is not a supported push format. Please specify one of these ['online', "
                                          "'offline', 'online_and_offline']."));
    const std::string name = body["push_source_name"].get<std::string>();
    const auto& sources = ctx.cfg->push_sources;
    const auto source = std::find_if(sources.begin(), sources.end(), [&](const push_source_config& p) { return p.name == name; });
    if (source == sources.end())
        return respond(feast_error(422, "PushSourceNotFoundException", "Unable to find push source '" + name + "'."));
    if (ctx.ingest == nullptr) return respond(feast_failure("push ingestion is not available"));
    std::vector<std::pair<std::uint32_t, std::vector<std::string>>> writes;
    for (const auto& set_name : source->feature_sets) {
        const set_view* view = catalog.find(set_name);
        if (view == nullptr) return respond(feast_failure("push source " + name + ": no feature set " + set_name));
        std::string error;
        auto rows = frame_rows(body["df"], *view->set, error);
        if (!rows) return respond(feast_failure(error));
        writes.emplace_back(view->index, std::move(*rows));
    }
    // One store serves both: history is the offline store, latest/Redis/memory the online one; every
    // "to" writes through the same pipeline.
    write_frames(ctx, std::move(writes), [respond](std::string problems) {
        if (!problems.empty()) return respond(feast_failure(problems));
        respond(response{http::status::ok, 11});
    });
}

// POST /write-to-online-store (feature_server.py:920-933), as Feast's remote online store sends it
// (remote.py:246-296): {"feature_view_name", "df"}; 200 with the body null.
void write_to_online_store(const serve_context& ctx, const set_catalog& catalog, const request_context& rc,
                           const responder& respond) {
    if (auto bad = check_content_type(rc.req, {"application/json"})) return respond(std::move(*bad));
    nlohmann::json body;
    if (auto bad = model_body(rc.req, body)) return respond(std::move(*bad));
    if (auto bad = frame_model(body, "feature_view_name")) return respond(std::move(*bad));
    const std::string name = body["feature_view_name"].get<std::string>();
    const set_view* view = catalog.find(name);
    if (view == nullptr)
        return respond(feast_error(404, "FeastObjectNotFoundException", "Can't recognize feast object with a name " + name));
    if (ctx.ingest == nullptr) return respond(feast_failure("push ingestion is not available"));
    std::string error;
    auto rows = frame_rows(body["df"], *view->set, error);
    if (!rows) return respond(feast_failure(error));
    std::vector<std::pair<std::uint32_t, std::vector<std::string>>> writes;
    writes.emplace_back(view->index, std::move(*rows));
    write_frames(ctx, std::move(writes), [respond](std::string problems) {
        if (!problems.empty()) return respond(feast_failure(problems));
        respond(json_text_response(http::status::ok, "null"));
    });
}

}  // namespace

void add_feast_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog) {
    // The Feast operator's startup, liveness and readiness probe (services.go:607-620): 200, empty,
    // while the process serves; the stores' state is /readyz's (a liveness probe must not restart
    // a daemon that serves from memory while PostgreSQL is away).
    routes.add(http::verb::get, "/health", "", [](const request_context&, const responder& respond) {
        response res{http::status::ok, 11};
        respond(std::move(res));
    });
    routes.add(http::verb::post, "/push", "write", [ctx, catalog](const request_context& rc, const responder& respond) {
        push(ctx, *catalog, rc, respond);
    });
    routes.add(http::verb::post, "/write-to-online-store", "write",
               [ctx, catalog](const request_context& rc, const responder& respond) {
                   write_to_online_store(ctx, *catalog, rc, respond);
               });
    routes.add(http::verb::post, "/get-online-features", "read",
               [ctx, catalog](const request_context& rc, const responder& respond) {
                   get_online_features(ctx, *catalog, rc, respond);
               });
}

}  // namespace sluice::serve
