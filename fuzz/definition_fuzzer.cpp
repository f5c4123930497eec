// libFuzzer target: the definitions' parsers. The first byte picks what the rest is:
//  - even: a config file's text. When it loads, each set's canonical spec must load back (as the
//    one set of a config) to a set whose canonical spec is the same text, and must classify
//    against itself with no change: a registry row must always read back as what was recorded.
//  - odd: two specs as the registry could hold them (anything, split at the first NUL): the
//    classification must not crash, and a spec against itself must show no change.
// A broken property aborts (a crash for libFuzzer), as do sanitizer findings and exceptions.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "sluice/config/definition.hpp"
#include "sluice/config/loader.hpp"
#include "sluice/config/reload.hpp"

namespace {

using namespace sluice;

[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "definition_fuzzer: %s\n%s\n", what, detail.c_str());
    std::abort();
}

void config_round_trip(const std::string& text) {
    const auto loaded = load_config_text(text);
    if (!loaded.ok()) return;
    // A live reload of the same file changes nothing.
    if (const auto same = plan_reload(loaded.cfg, loaded.cfg); !same.changes.empty())
        fail("a config differs from itself", same.changes[0].path + ": " + same.changes[0].change);
    // The set's expectations are checked on the config's quality windows: those go with the spec.
    std::string windows;
    for (auto w : loaded.cfg.quality.windows_ms) windows += (windows.empty() ? "\"" : ", \"") + format_duration(w) + "\"";
    for (const auto& set : loaded.cfg.feature_sets) {
        const std::string spec = canonical_spec(set);
        const auto again = load_config_text(R"({"kafka": {"brokers": "embedded"}, "quality": {"windows": [)" + windows +
                                            R"(]}, "feature_sets": [)" + spec + "]}");
        if (!again.ok()) fail("a canonical spec does not load", spec + "\n" + format_errors(again.errors));
        const std::string respec = canonical_spec(again.cfg.feature_sets.at(0));
        if (respec != spec) fail("a canonical spec does not read back to itself", spec + "\n" + respec);
        if (!classify_changes(spec, spec).empty()) fail("a spec differs from itself", spec);
    }
}

void classify(const std::string& both) {
    const auto nul = both.find('\0');
    const std::string a = both.substr(0, nul);
    const std::string b = nul == std::string::npos ? std::string() : both.substr(nul + 1);
    (void)classify_changes(a, b);
    const auto self = classify_changes(a, a);
    // Only an unreadable spec is a change against itself (it says so, as breaking).
    if (!self.empty() && !(self.size() == 1 && self[0].subject == "spec")) fail("a spec differs from itself", a);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
    if (data[0] % 2 == 0)
        config_round_trip(rest);
    else
        classify(rest);
    return 0;
}
