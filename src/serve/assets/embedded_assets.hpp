#pragma once
// The files of src/serve/assets/ (the status page, the OpenAPI document), compiled into the
// binary by cmake/embed_assets.cmake. Immutable static data: safe to read from any thread.

#include <string_view>

namespace sluice::serve {

/// The content of the asset with this file name ("status.html"), or an empty view when there
/// is no such asset.
std::string_view embedded_asset(std::string_view name);

}  // namespace sluice::serve
