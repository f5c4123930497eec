#pragma once
// The API's route table, built from every resource's handlers (src/serve/handlers/). Defined in
// server.cpp; also used by the fuzz target, which drives the dispatcher without sockets.

#include "router.hpp"
#include "sluice/serve/services.hpp"

namespace sluice::serve {

/// Every route of the README's API, its handlers bound to ctx (which must outlive the router).
router make_routes(const serve_context& ctx);

}  // namespace sluice::serve
