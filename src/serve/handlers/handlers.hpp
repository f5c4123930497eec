#pragma once
// The API's resources, one file each; every file adds its routes to the router.

#include <memory>

#include "../http/router.hpp"
#include "sluice/serve/services.hpp"

namespace sluice::serve {

/// GET /healthz, GET /readyz (public: no API key needed).
void add_health_routes(router& routes, const serve_context& ctx);

/// Every route that reads or writes feature data, the catalog and /metrics (the functions below).
void add_feature_routes(router& routes, const serve_context& ctx);

class set_catalog;  // common.hpp

/// GET /v1/features/{set}/{key}, POST /v1/features/lookup (scope "read").
void add_read_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog);
/// GET /v1/features/{set}/{key}/history (scope "read").
void add_history_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog);
/// POST /get-online-features, Feast-compatible (scope "read").
void add_feast_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog);
/// POST /v1/ingest/{set} (scope "write").
void add_ingest_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog);
/// GET /v1/feature-sets[/{set}], GET /metrics (scope "admin").
/// Feast's answers (feast.cpp): a Feast error (status, the body a JSON string holding {"module":
/// "feast.errors", "class", "message"}, as Feast's client decodes it); any other failure (500, the
/// message as a JSON string); FastAPI's 422 for a body the request model refuses; a timestamp in
/// Feast's adaptive precision.
response feast_error(unsigned status, std::string_view cls, std::string_view message);
response feast_failure(std::string_view message);
response feast_invalid(std::string_view type, const ordered_json& loc, std::string_view msg, const ordered_json& input);
std::string feast_timestamp(std::int64_t epoch_ms);

/// POST /v1/training-sets (training.cpp).
void add_training_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog);
void add_catalog_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog);

/// POST /v1/admin/reload, GET /v1/admin/config, GET /v1/admin/activity (scope "admin").
void add_admin_routes(router& routes, const serve_context& ctx);

/// GET / (the status page) and GET /openapi.json, both embedded in the binary (public).
void add_static_routes(router& routes, const serve_context& ctx);

}  // namespace sluice::serve
