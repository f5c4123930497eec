#include "common.hpp"
#include "handlers.hpp"

namespace sluice::serve {

void add_feature_routes(router& routes, const serve_context& ctx) {
    // Each set's columns are worked out once here, not per request.
    auto catalog = std::make_shared<const set_catalog>(*ctx.cfg, ctx.versions);
    add_read_routes(routes, ctx, catalog);
    add_history_routes(routes, ctx, catalog);
    add_feast_routes(routes, ctx, catalog);
    add_ingest_routes(routes, ctx, catalog);
    add_catalog_routes(routes, ctx, catalog);
    add_training_routes(routes, ctx, catalog);
}

}  // namespace sluice::serve
