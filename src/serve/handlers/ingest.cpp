// POST /v1/ingest/{set}: records pushed over HTTP, validated like Kafka messages and written by
// the same writer. The body is one JSON object, a JSON array of objects, or NDJSON (one object per
// line). The answer comes once the valid records are durable; invalid ones are listed by index
// (and kept as dead letters), so nothing is dropped without the client hearing of it.

#include <exception>
#include <optional>

#include <spdlog/spdlog.h>

#include "common.hpp"
#include "handlers.hpp"

namespace sluice::serve {

namespace {

// Splits the body into one payload per record. Lines of NDJSON are kept as they were sent.
result<std::vector<std::string>> split_records(const request& req) {
    using R = result<std::vector<std::string>>;
    const std::string& body = req.body();
    bool ndjson = false;
    if (auto it = req.find(http::field::content_type); it != req.end()) {
        const std::string_view type = it->value();
        ndjson = type.rfind("application/x-ndjson", 0) == 0 || type.rfind("application/ndjson", 0) == 0;
    }
    std::vector<std::string> out;
    if (!ndjson) {
        const auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
        if (!doc.is_discarded()) {
            if (doc.is_array()) {
                out.reserve(doc.size());
                for (const auto& item : doc) out.push_back(item.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            } else {
                out.push_back(body);
            }
            return out;
        }
        // Not one JSON document: NDJSON sent without its content type, when there are lines.
        if (body.find('\n') == std::string::npos)
            return R::failure("the body is not JSON: send an object, an array of objects, or NDJSON "
                              "(Content-Type: application/x-ndjson)");
    }
    std::size_t pos = 0;
    while (pos < body.size()) {
        std::size_t end = body.find('\n', pos);
        if (end == std::string::npos) end = body.size();
        std::string_view line(body.data() + pos, end - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        bool blank = true;
        for (char c : line) blank = blank && (c == ' ' || c == '\t');
        if (!blank) out.emplace_back(line);
        pos = end + 1;
    }
    if (out.empty()) return R::failure("the body has no records");
    return out;
}

void ingest(const serve_context& ctx, const set_catalog& catalog, const request_context& rc, const responder& respond) {
    if (auto bad = check_content_type(rc.req, {"application/json", "application/x-ndjson", "application/ndjson"}))
        return respond(std::move(*bad));
    const set_view* view = catalog.find(rc.param("set"));
    if (!view) return respond(unknown_set(rc.param("set")));
    auto records = split_records(rc.req);
    if (!records) return respond(bad_request(records.message()));
    if (ctx.ingest == nullptr)
        return respond(error_response(http::status::service_unavailable, "store_unavailable",
                                      "push ingestion is not available"));
    const std::size_t sent = records.value().size();
    // The activity log's row for this push: who pushed what into which set, and how it went.
    std::optional<activity_event> row;
    if (ctx.activity != nullptr) {
        row.emplace();
        row->actor = rc.api_key_name.empty() ? "anonymous" : rc.api_key_name;
        row->action = "ingest";
        row->target = view->set->display_name();
        row->request_id = rc.request_id;
        row->client = rc.client;
    }
    ctx.ingest->push(view->index, std::move(records.value()), [respond, activity = ctx.activity, row, sent](result<push_outcome> r) mutable {
        try {
            if (row) {
                row->outcome = !r.ok() ? "failed" : r.value().errors.empty() ? "ok" : "partial";
                row->detail = {{"records", sent}};
                if (r.ok())
                    row->detail.update({{"accepted", r.value().accepted},
                                        {"rejected", r.value().errors.size()},
                                        {"skipped", r.value().skipped}});
                else
                    row->detail["error"] = r.message();
                activity->record(std::move(*row));
            }
            if (!r.ok())
                return respond(error_response(http::status::service_unavailable, "store_unavailable", r.message()));
            const push_outcome& o = r.value();
            ordered_json body;
            body["accepted"] = o.accepted;
            body["rejected"] = o.errors.size();
            body["skipped"] = o.skipped;
            ordered_json errors = ordered_json::array();
            for (const auto& [index, message] : o.errors) errors.push_back({{"index", index}, {"error", message}});
            body["errors"] = std::move(errors);
            respond(json_response(http::status::ok, body));
        } catch (const std::exception& ex) {
            http_logger()->error("http: rendering an ingest answer failed: {}", ex.what());
            respond(error_response(http::status::internal_server_error, "internal_error", "internal error"));
        }
    });
}

}  // namespace

void add_ingest_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog) {
    routes.add(http::verb::post, "/v1/ingest/{set}", "write",
               [ctx, catalog](const request_context& rc, const responder& respond) { ingest(ctx, *catalog, rc, respond); });
}

}  // namespace sluice::serve
