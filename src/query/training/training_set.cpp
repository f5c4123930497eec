// The training-set engine: the request and its plan against the config, then rows read a chunk at
// a time, joined per set through history_join, and written in input order (NDJSON or CSV).

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/config/columns.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/core/value_codec.hpp"
#include "sluice/preprocess/aggregator.hpp"
#include "sluice/query/training_set.hpp"

namespace sluice {

const char* content_type_of(table_format f) {
    return f == table_format::csv ? "text/csv; charset=utf-8" : "application/x-ndjson";
}

std::optional<table_format> table_format_from(std::string_view text) {
    const auto semi = text.find(';');
    if (semi != std::string_view::npos) text = text.substr(0, semi);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    auto is = [&](std::string_view s) {
        return text.size() == s.size() && std::equal(text.begin(), text.end(), s.begin(), [](char a, char b) {
                   return std::tolower(static_cast<unsigned char>(a)) == b;
               });
    };
    if (is("ndjson") || is("application/x-ndjson") || is("application/ndjson") || is("application/jsonl") ||
        is("application/json-seq"))
        return table_format::ndjson;
    if (is("csv") || is("text/csv")) return table_format::csv;
    return std::nullopt;
}

result<training_request> training_request_from_json(const nlohmann::json& body, table_format default_output) {
    using out_t = result<training_request>;
    auto bad = [](const std::string& m) { return out_t::failure(m, error_kind::permanent); };
    if (!body.is_object()) return bad("the body must be a JSON object");
    training_request r;
    r.output = default_output;
    for (const auto& [key, v] : body.items()) {
        if (key == "features") {
            if (!v.is_array() || v.empty()) return bad("\"features\" must be a non-empty array of \"set:feature\" strings");
            for (const auto& f : v) {
                if (!f.is_string()) return bad("\"features\" must be a non-empty array of \"set:feature\" strings");
                r.features.push_back(f.get<std::string>());
            }
        } else if (key == "full_feature_names" || key == "as_known_at" || key == "statuses") {
            if (!v.is_boolean()) return bad("\"" + key + "\" must be true or false");
            (key == "full_feature_names" ? r.full_feature_names : key == "as_known_at" ? r.as_known_at : r.statuses) =
                v.get<bool>();
        } else if (key == "timestamp_column") {
            if (!v.is_string() || v.get_ref<const std::string&>().empty())
                return bad("\"timestamp_column\" must be a non-empty string");
            r.timestamp_column = v.get<std::string>();
        } else if (key == "format") {
            auto f = v.is_string() ? table_format_from(v.get_ref<const std::string&>()) : std::nullopt;
            if (!f) return bad("\"format\" must be \"ndjson\" or \"csv\"");
            r.output = *f;
        } else if (key == "entity_rows" || key == "entity_query" || key == "entity_table") {
            continue;  // the caller's
        } else {
            return bad("unknown key \"" + key + "\"");
        }
    }
    if (r.features.empty()) return bad("\"features\" is required");
    return r;
}

result<training_plan> plan_training_set(const config& cfg, const training_request& request,
                                        const std::function<int(std::string_view)>& resolve) {
    using out_t = result<training_plan>;
    auto bad = [](const std::string& m) { return out_t::failure(m, error_kind::permanent); };
    training_plan plan;
    plan.request = request;
    plan.columns.timestamp = request.timestamp_column;
    if (request.features.empty()) return bad("no features asked");
    for (const auto& name : request.features) {
        const auto colon = name.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == name.size())
            return bad("feature \"" + name + "\" is not \"set:feature\"");
        const std::string set_name = name.substr(0, colon), column = name.substr(colon + 1);
        const int index = resolve(set_name);
        if (index < 0 || static_cast<std::size_t>(index) >= cfg.feature_sets.size())
            return bad("feature \"" + name + "\": no feature set \"" + set_name + "\"");
        const auto& set = cfg.feature_sets[static_cast<std::size_t>(index)];
        const auto cols = latest_columns(set);
        const auto c = std::find_if(cols.begin(), cols.end(), [&](const latest_column& l) { return l.name == column; });
        if (c == cols.end())
            return bad("feature \"" + name + "\": the set \"" + set_name + "\" has no field or aggregation \"" + column + "\"");
        auto part = std::find_if(plan.parts.begin(), plan.parts.end(),
                                 [&](const training_part& p) { return p.set_index == static_cast<std::uint32_t>(index); });
        if (part == plan.parts.end()) {
            training_part p;
            p.set_index = static_cast<std::uint32_t>(index);
            auto e = std::find(plan.columns.entities.begin(), plan.columns.entities.end(), set.key_field);
            if (e == plan.columns.entities.end()) {
                plan.columns.entities.push_back(set.key_field);
                e = plan.columns.entities.end() - 1;
            }
            p.entity = static_cast<std::size_t>(e - plan.columns.entities.begin());
            plan.parts.push_back(p);
            part = plan.parts.end() - 1;
        }
        if (c->aggregation) part->aggregations = true;
        training_feature f;
        f.part = static_cast<std::size_t>(part - plan.parts.begin());
        f.column = static_cast<std::size_t>(c - cols.begin());
        f.output_name = request.full_feature_names ? set.name + "__" + column : column;
        f.type = c->type;
        plan.features.push_back(std::move(f));
    }
    std::vector<std::string> names = plan.columns.entities;
    names.push_back(plan.columns.timestamp);
    for (const auto& f : plan.features) {
        if (std::find(names.begin(), names.end(), f.output_name) != names.end())
            return bad("two columns would be named \"" + f.output_name + "\"" +
                       (request.full_feature_names ? std::string() : "; ask with \"full_feature_names\": true"));
        names.push_back(f.output_name);
        if (request.statuses) names.push_back(f.output_name + "__status");
    }
    if (std::find(plan.columns.entities.begin(), plan.columns.entities.end(), plan.columns.timestamp) !=
        plan.columns.entities.end())
        return bad("the timestamp column \"" + plan.columns.timestamp + "\" is also an entity column");
    return plan;
}

namespace {

enum class cell_status { present, not_found, expired };
const char* status_text(cell_status s) {
    return s == cell_status::present ? "PRESENT" : s == cell_status::not_found ? "NOT_FOUND" : "EXPIRED";
}

// A CSV cell: quoted when it holds a comma, a quote, a line break, or leading/trailing spaces.
void append_csv(std::string& out, std::string_view text) {
    const bool quote = text.find_first_of(",\"\r\n") != std::string_view::npos ||
                       (!text.empty() && (text.front() == ' ' || text.back() == ' '));
    if (!quote) {
        out += text;
        return;
    }
    out += '"';
    for (char c : text) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
}

// A JSON-text cell as CSV: a string's content, null as empty, anything else as its text.
void append_csv_json(std::string& out, std::string_view json_text) {
    if (json_text == "null") return;
    if (!json_text.empty() && json_text.front() == '"') {
        const nlohmann::json v = nlohmann::json::parse(json_text, nullptr, false);
        if (v.is_string()) return append_csv(out, v.get_ref<const std::string&>());
    }
    append_csv(out, json_text);
}

// A feature value as CSV: strings and timestamps bare, json as its text, null as empty.
void append_csv_value(std::string& out, field_type type, const value& v) {
    if (std::holds_alternative<std::monostate>(v)) return;
    if (const auto* s = std::get_if<std::string>(&v)) return append_csv(out, *s);
    if (type == field_type::timestamp) {
        if (const auto* t = std::get_if<std::int64_t>(&v)) return append_csv(out, format_rfc3339_ms(*t));
    }
    std::string text;
    append_value_json_text(text, type, v);
    if (text != "null") append_csv(out, text);
}

}  // namespace

result<training_progress> run_training_set(const config& cfg, const training_plan& plan, entity_reader& rows,
                                           history_join& join, const training_sink& out,
                                           const training_options& options) {
    using out_t = result<training_progress>;
    const auto started = std::chrono::steady_clock::now();
    const bool csv = plan.request.output == table_format::csv;
    const std::size_t chunk_rows = std::max<std::size_t>(options.chunk_rows, 1);
    training_progress progress;
    progress.total = options.total_rows;

    struct part_state {
        const feature_set_config* set;
        std::vector<latest_column> columns;
        std::int64_t span_ms;
        std::vector<join_answer> answers;
        std::vector<cell_status> statuses;
        std::vector<std::vector<value>> aggregates;  // per row, computed when the row is PRESENT
    };
    std::vector<part_state> parts;
    for (const auto& p : plan.parts) {
        const auto& set = cfg.feature_sets[p.set_index];
        parts.push_back({&set, latest_columns(set), p.aggregations ? set.widest_window_ms() : 0, {}, {}, {}});
    }

    // A chunk read and joined: its rows and each part's answers (or why it could not be).
    struct joined {
        std::vector<entity_row> rows;
        std::size_t n = 0;
        std::vector<std::vector<join_answer>> answers;  // per part
        std::string error;
        error_kind kind = error_kind::permanent;
    };
    // The next chunk is read and joined on a thread of its own while this one is rendered and written:
    // PostgreSQL's time and the rendering overlap. At most one chunk waits.
    std::mutex mutex;
    std::condition_variable cv;
    std::optional<joined> waiting;
    bool stop = false;
    std::thread producer([&] {
        std::vector<join_probe> probes;
        while (true) {
            {
                // The next chunk is read only once the last one was taken: one chunk ahead of the
                // writer at most, joined while the writer renders the one before.
                std::unique_lock lock(mutex);
                cv.wait(lock, [&] { return !waiting || stop; });
                if (stop) return;
            }
            joined j;
            j.rows.resize(chunk_rows);
            while (j.n < chunk_rows) {
                auto more = rows.next(j.rows[j.n]);
                if (!more) {
                    j.error = more.message();
                    j.kind = more.kind();
                    break;
                }
                if (!more.value()) break;
                ++j.n;
            }
            for (std::size_t pi = 0; pi < plan.parts.size() && j.error.empty() && j.n > 0; ++pi) {
                probes.resize(j.n);
                for (std::size_t r = 0; r < j.n; ++r) probes[r] = {j.rows[r].keys[plan.parts[pi].entity], j.rows[r].at_ms};
                auto answers = join.join(plan.parts[pi].set_index, probes, plan.request.as_known_at, parts[pi].span_ms);
                if (!answers) {
                    j.error = answers.message();
                    j.kind = answers.kind();
                    break;
                }
                j.answers.push_back(std::move(answers.value()));
            }
            const bool last = !j.error.empty() || j.n < chunk_rows;
            std::unique_lock lock(mutex);
            if (stop) return;
            waiting = std::move(j);
            cv.notify_all();
            if (last) return;
        }
    });
    struct joiner {
        std::thread& t;
        std::mutex& m;
        std::condition_variable& cv;
        bool& stop;
        ~joiner() {
            {
                std::lock_guard lock(m);
                stop = true;
            }
            cv.notify_all();
            t.join();
        }
    } join_producer{producer, mutex, cv, stop};

    std::string buf;
    bool header_written = false;
    while (true) {
        joined j;
        {
            std::unique_lock lock(mutex);
            cv.wait(lock, [&] { return waiting.has_value(); });
            j = std::move(*waiting);
            waiting.reset();
            cv.notify_all();
        }
        if (!j.error.empty()) return out_t::failure(j.error, j.kind);
        const std::size_t n = j.n;
        const std::vector<entity_row>& chunk = j.rows;
        buf.clear();
        if (!header_written) {
            header_written = true;
            const auto& extra = rows.extra_columns();
            for (const auto& name : extra)
                for (const auto& f : plan.features)
                    if (name == f.output_name || (plan.request.statuses && name == f.output_name + "__status"))
                        return out_t::failure("the entity rows' column \"" + name + "\" has the name of a feature column" +
                                                  (plan.request.full_feature_names ? std::string()
                                                                                   : "; ask with \"full_feature_names\": true"),
                                              error_kind::permanent);
            if (csv) {
                bool first = true;
                auto column = [&](std::string_view name) {
                    if (!first) buf += ',';
                    first = false;
                    append_csv(buf, name);
                };
                for (const auto& e : plan.columns.entities) column(e);
                column(plan.columns.timestamp);
                for (const auto& e : extra) column(e);
                for (const auto& f : plan.features) {
                    column(f.output_name);
                    if (plan.request.statuses) column(f.output_name + "__status");
                }
                buf += '\n';
            }
        }
        if (n == 0) {
            if (!buf.empty() && !out.write(buf)) return out_t::failure("the receiver has gone", error_kind::permanent);
            break;
        }

        for (std::size_t pi = 0; pi < parts.size(); ++pi) {
            auto& ps = parts[pi];
            ps.answers = std::move(j.answers[pi]);
            ps.statuses.assign(n, cell_status::not_found);
            ps.aggregates.assign(n, {});
            for (std::size_t r = 0; r < n; ++r) {
                const auto& a = ps.answers[r];
                if (!a.newest) continue;
                const std::int64_t age = chunk[r].at_ms - a.newest->event_time_ms;
                if (ps.set->ttl_ms > 0 && age > ps.set->ttl_ms) {
                    ps.statuses[r] = cell_status::expired;
                    continue;
                }
                ps.statuses[r] = cell_status::present;
                if (ps.span_ms > 0) ps.aggregates[r] = aggregate_events(*ps.set, a.events, chunk[r].at_ms);
            }
        }

        const auto& extra_names = rows.extra_columns();
        for (std::size_t r = 0; r < n; ++r) {
            const entity_row& row = chunk[r];
            if (csv) {
                bool first = true;
                auto sep = [&] {
                    if (!first) buf += ',';
                    first = false;
                };
                for (const auto& e : row.entities) sep(), append_csv_json(buf, e);
                sep(), buf += format_rfc3339_ms(row.at_ms);
                for (const auto& e : row.extra) sep(), append_csv_json(buf, e);
                for (const auto& f : plan.features) {
                    const auto& ps = parts[f.part];
                    const cell_status st = ps.statuses[r];
                    sep();
                    if (st == cell_status::present) {
                        const std::size_t fields = ps.answers[r].newest->values.size();
                        const value* v = nullptr;
                        if (ps.columns[f.column].aggregation) {
                            const std::size_t a = f.column - ps.set->fields.size();
                            if (a < ps.aggregates[r].size()) v = &ps.aggregates[r][a];
                        } else if (f.column < fields) {
                            v = &ps.answers[r].newest->values[f.column];
                        }
                        if (v != nullptr) append_csv_value(buf, f.type, *v);
                    }
                    if (plan.request.statuses) sep(), buf += status_text(st);
                }
                buf += '\n';
            } else {
                buf += '{';
                bool first = true;
                auto key = [&](std::string_view name) {
                    if (!first) buf += ',';
                    first = false;
                    append_json_string(buf, name);
                    buf += ':';
                };
                for (std::size_t e = 0; e < row.entities.size(); ++e) key(plan.columns.entities[e]), buf += row.entities[e];
                key(plan.columns.timestamp);
                buf += '"';
                buf += format_rfc3339_ms(row.at_ms);
                buf += '"';
                for (std::size_t e = 0; e < row.extra.size() && e < extra_names.size(); ++e)
                    key(extra_names[e]), buf += row.extra[e];
                for (const auto& f : plan.features) {
                    const auto& ps = parts[f.part];
                    const cell_status st = ps.statuses[r];
                    key(f.output_name);
                    const value* v = nullptr;
                    if (st == cell_status::present) {
                        if (ps.columns[f.column].aggregation) {
                            const std::size_t a = f.column - ps.set->fields.size();
                            if (a < ps.aggregates[r].size()) v = &ps.aggregates[r][a];
                        } else if (f.column < ps.answers[r].newest->values.size()) {
                            v = &ps.answers[r].newest->values[f.column];
                        }
                    }
                    if (v != nullptr)
                        append_value_json_text(buf, f.type, *v);
                    else
                        buf += "null";
                    if (plan.request.statuses) {
                        key(f.output_name + "__status");
                        buf += '"';
                        buf += status_text(st);
                        buf += '"';
                    }
                }
                buf += "}\n";
            }
            for (const auto& f : plan.features) {
                const cell_status st = parts[f.part].statuses[r];
                if (st == cell_status::not_found) ++progress.not_found;
                if (st == cell_status::expired) ++progress.expired;
            }
        }
        progress.rows += n;
        progress.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (!out.write(buf)) return out_t::failure("the receiver has gone", error_kind::permanent);
        if (out.progress) out.progress(progress);
        if (n < chunk_rows) break;
    }
    progress.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return progress;
}

}  // namespace sluice
