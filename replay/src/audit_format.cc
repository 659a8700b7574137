// The token audit's report formats.
#include <algorithm>
#include <cstdio>
#include <ostream>
#include <sstream>

#include "cs/token_audit.h"

#include "cs/pretty_json_writer.h"

namespace cs {
namespace {

std::string optional_time(const std::optional<Timestamp>& t) { return t ? format_timestamp(*t) : ""; }

// RFC 4180 quoting, only when needed.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

void write_audit_json(const AuditReport& r, std::ostream& out) {
  // Written in blocks of this many bytes: the report of a large log runs to
  // tens of megabytes.
  constexpr std::size_t block_bytes = 1 << 16;
  std::string block;
  block.reserve(block_bytes + 4096);
  auto drain = [&](bool full_only) {
    if (full_only && block.size() < block_bytes) return;
    out.write(block.data(), static_cast<std::streamsize>(block.size()));
    block.clear();
  };
  PrettyJsonWriter w(block);
  auto figures = [&](const TokenFigures& f) {
    w.key("balanceStart");
    w.integer(f.balance_start);
    w.key("purchased");
    w.integer(f.purchased);
    w.key("allocated");
    w.integer(f.allocated);
    w.key("used");
    w.integer(f.used);
    w.key("balanceEnd");
    w.integer(f.balance_end);
  };
  auto optional_timestamp = [&](const std::optional<Timestamp>& t) {
    if (t) w.string(format_timestamp(*t));
    else w.null();
  };
  w.begin_object();
  w.key("window");
  w.begin_object();
  w.key("from");
  optional_timestamp(r.options.from);
  w.key("to");
  optional_timestamp(r.options.to);
  w.end_object();
  w.key("eventsScanned");
  w.integer(r.events_scanned);
  w.key("headSeq");
  w.integer(r.head.value);
  w.key("customers");
  w.begin_array();
  for (const auto& c : r.customers) {
    w.begin_object();
    w.key("customerId");
    w.string(c.customer.to_string());
    figures(c.figures);
    w.key("usedByFeature");
    w.begin_object();
    for (const auto& [feature, n] : c.used_by_feature) {
      w.key(feature);
      w.integer(n);
    }
    w.end_object();
    w.key("usedByUser");
    w.begin_object();
    for (const auto& [user, n] : c.used_by_user) {
      w.key(user.to_string());
      w.integer(n);
    }
    w.end_object();
    w.key("days");
    w.begin_array();
    for (const auto& [day, d] : c.days) {
      w.begin_object();
      w.key("date");
      w.string(audit_day_name(day));
      w.key("purchased");
      w.integer(d.purchased);
      w.key("allocated");
      w.integer(d.allocated);
      w.key("used");
      w.integer(d.used);
      w.key("balanceEnd");
      w.integer(d.balance_end);
      w.end_object();
    }
    w.end_array();
    w.end_object();
    drain(/*full_only=*/true);
  }
  w.end_array();
  w.key("totals");
  w.begin_object();
  figures(r.totals);
  w.end_object();
  w.key("findings");
  w.begin_array();
  for (const auto& f : r.findings) {
    w.begin_object();
    w.key("seq");
    w.integer(f.seq.value);
    w.key("rule");
    w.string(f.rule);
    w.key("customerId");
    if (f.customer) w.string(f.customer->to_string());
    else w.null();
    w.key("message");
    w.string(f.message);
    w.end_object();
    drain(/*full_only=*/true);
  }
  w.end_array();
  w.end_object();
  block += '\n';
  drain(/*full_only=*/false);
}

// Long format, one table: kind is customer, total, day, feature, user or
// finding; the columns a kind does not use are empty.
std::string audit_to_csv(const AuditReport& r) {
  std::ostringstream out;
  out << "kind,customerId,key,seq,rule,balanceStart,purchased,allocated,used,balanceEnd,message\n";
  auto figures = [&](const TokenFigures& f) {
    out << f.balance_start << ',' << f.purchased << ',' << f.allocated << ',' << f.used << ',' << f.balance_end;
  };
  for (const auto& c : r.customers) {
    std::string id = c.customer.to_string();
    out << "customer," << id << ",,,,";
    figures(c.figures);
    out << ",\n";
    for (const auto& [day, d] : c.days) {
      out << "day," << id << ',' << audit_day_name(day) << ",,,," << d.purchased << ',' << d.allocated << ',' << d.used << ','
          << d.balance_end << ",\n";
    }
    for (const auto& [feature, n] : c.used_by_feature) out << "feature," << id << ',' << csv_field(feature) << ",,,,,," << n << ",,\n";
    for (const auto& [user, n] : c.used_by_user) out << "user," << id << ',' << user.to_string() << ",,,,,," << n << ",,\n";
  }
  out << "total,,,,,";
  figures(r.totals);
  out << ",\n";
  for (const auto& f : r.findings) {
    out << "finding," << (f.customer ? f.customer->to_string() : "") << ",," << f.seq.value << ',' << f.rule
        << ",,,,,," << csv_field(f.message) << '\n';
  }
  return out.str();
}

std::string audit_to_table(const AuditReport& r) {
  std::ostringstream out;
  out << "token audit: " << r.events_scanned << " events scanned up to seq " << r.head.value;
  if (r.options.from || r.options.to) {
    out << ", window [" << optional_time(r.options.from) << ", " << optional_time(r.options.to) << ")";
  }
  out << "\n\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-36s %12s %12s %12s %12s %12s\n", "customer", "start", "purchased",
                "allocated", "used", "end");
  out << line;
  auto row = [&](const std::string& name, const TokenFigures& f) {
    std::snprintf(line, sizeof line, "%-36s %12lld %12lld %12lld %12lld %12lld\n", name.c_str(),
                  static_cast<long long>(f.balance_start), static_cast<long long>(f.purchased),
                  static_cast<long long>(f.allocated), static_cast<long long>(f.used),
                  static_cast<long long>(f.balance_end));
    out << line;
  };
  for (const auto& c : r.customers) row(c.customer.to_string(), c.figures);
  row("TOTAL (" + std::to_string(r.customers.size()) + " customers)", r.totals);
  if (r.customers.size() == 1) {
    const auto& c = r.customers.front();
    out << "\nused by feature:\n";
    for (const auto& [feature, n] : c.used_by_feature) out << "  " << printable(feature) << ": " << n << "\n";
    out << "used by user:\n";
    for (const auto& [user, n] : c.used_by_user) out << "  " << user.to_string() << ": " << n << "\n";
    out << "per day (purchased / allocated / used / balance at the end of the day):\n";
    for (const auto& [day, d] : c.days) {
      out << "  " << audit_day_name(day) << "  " << d.purchased << " / " << d.allocated << " / " << d.used << " / " << d.balance_end
          << "\n";
    }
  }
  out << "\n" << (r.findings.empty() ? "no findings" : std::to_string(r.findings.size()) + " findings:") << "\n";
  for (const auto& f : r.findings) {
    out << "  seq " << f.seq.value << "  " << f.rule << "  " << (f.customer ? f.customer->to_string() : "-") << "  "
        << printable(f.message) << "\n";
  }
  return out.str();
}

std::string audit_to_html(const AuditReport& r, std::size_t charts_max) {
  std::map<Uuid, std::vector<const AuditFinding*>> by_customer;
  for (const auto& f : r.findings) {
    if (f.customer) by_customer[*f.customer].push_back(&f);
  }
  std::vector<const CustomerAudit*> order;
  for (const auto& c : r.customers) order.push_back(&c);
  std::stable_sort(order.begin(), order.end(), [&](const CustomerAudit* a, const CustomerAudit* b) {
    return by_customer.contains(a->customer) && !by_customer.contains(b->customer);
  });

  std::ostringstream out;
  out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Token audit</title>\n"
         "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
         "td,th{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}td.l,th.l{text-align:left}"
         ".customer{display:flex;gap:2em;margin:1.5em 0;align-items:flex-start}.finding{color:#b00}"
         "svg{background:#fafafa;border:1px solid #ccc}</style></head><body>\n";
  out << "<h1>Token audit</h1>\n<p>" << r.events_scanned << " events scanned up to seq " << r.head.value;
  if (r.options.from || r.options.to) {
    out << ", window [" << html_escape(optional_time(r.options.from)) << ", " << html_escape(optional_time(r.options.to)) << ")";
  }
  out << ". " << r.findings.size() << " findings.</p>\n";
  out << "<table><tr><th class=l>customers</th><th>start</th><th>purchased</th><th>allocated</th><th>used</th><th>end</th></tr>"
      << "<tr><td class=l>" << r.customers.size() << "</td><td>" << r.totals.balance_start << "</td><td>"
      << r.totals.purchased << "</td><td>" << r.totals.allocated << "</td><td>" << r.totals.used << "</td><td>"
      << r.totals.balance_end << "</td></tr></table>\n";

  constexpr int width = 520, height = 160, pad = 30;
  std::size_t charted = 0;
  for (const CustomerAudit* c : order) {
    if (charted++ == charts_max) {
      out << "<p>" << (order.size() - charts_max) << " more customers are in the table formats, not charted here.</p>\n";
      break;
    }
    const auto& points = c->balance_points;
    out << "<div class=customer><div><h3>" << c->customer.to_string() << "</h3>\n";
    out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
        << "\" role=\"img\" aria-label=\"balance over time\">";
    if (!points.empty()) {
      std::int64_t lo = std::min<std::int64_t>(0, points.front().balance), hi = points.front().balance;
      for (const auto& p : points) lo = std::min(lo, p.balance), hi = std::max(hi, p.balance);
      if (hi == lo) hi = lo + 1;
      std::int64_t t0 = points.front().at.micros, t1 = points.back().at.micros;
      if (t1 == t0) t1 = t0 + 1;
      auto x = [&](Timestamp t) {
        return pad + static_cast<double>(t.micros - t0) / static_cast<double>(t1 - t0) * (width - 2 * pad);
      };
      auto y = [&](std::int64_t b) {
        return height - pad - static_cast<double>(b - lo) / static_cast<double>(hi - lo) * (height - 2 * pad);
      };
      out << "<line x1=\"" << pad << "\" x2=\"" << width - pad << "\" y1=\"" << y(0) << "\" y2=\"" << y(0)
          << "\" stroke=\"#999\" stroke-dasharray=\"4\"/>";
      out << "<polyline fill=\"none\" stroke=\"#2a6\" stroke-width=\"1.5\" points=\"";
      for (const auto& p : points) out << x(p.at) << ',' << y(p.balance) << ' ';
      out << "\"/>";
      auto mine = by_customer.find(c->customer);
      if (mine != by_customer.end()) {
        for (const AuditFinding* f : mine->second) {
          auto at = std::find_if(points.begin(), points.end(), [&](const auto& p) { return p.seq == f->seq; });
          if (at != points.end()) {
            out << "<circle cx=\"" << x(at->at) << "\" cy=\"" << y(at->balance) << "\" r=\"4\" fill=\"#b00\"><title>seq "
                << f->seq.value << ": " << html_escape(f->rule) << "</title></circle>";
          }
        }
      }
      out << "<text x=\"4\" y=\"" << y(hi) + 4 << "\" font-size=\"10\">" << hi << "</text>"
          << "<text x=\"4\" y=\"" << y(lo) + 4 << "\" font-size=\"10\">" << lo << "</text>"
          << "<text x=\"" << pad << "\" y=\"" << height - 8 << "\" font-size=\"10\">"
          << html_escape(format_timestamp(points.front().at).substr(0, 10)) << "</text>"
          << "<text x=\"" << width - pad - 60 << "\" y=\"" << height - 8 << "\" font-size=\"10\">"
          << html_escape(format_timestamp(points.back().at).substr(0, 10)) << "</text>";
    }
    out << "</svg>\n<p>start " << c->figures.balance_start << ", purchased " << c->figures.purchased
        << ", allocated " << c->figures.allocated << ", used " << c->figures.used << ", end "
        << c->figures.balance_end << "</p></div>\n<div>";
    auto mine = by_customer.find(c->customer);
    if (mine == by_customer.end()) {
      out << "<p>no findings</p>";
    } else {
      out << "<ul>";
      for (const AuditFinding* f : mine->second) {
        out << "<li class=finding>seq " << f->seq.value << " <b>" << html_escape(f->rule) << "</b>: "
            << html_escape(f->message) << "</li>";
      }
      out << "</ul>";
    }
    out << "</div></div>\n";
  }
  std::vector<const AuditFinding*> global;
  for (const auto& f : r.findings) {
    if (!f.customer) global.push_back(&f);
  }
  if (!global.empty()) {
    out << "<h2>Findings not tied to a customer</h2><ul>";
    for (const auto* f : global) {
      out << "<li class=finding>seq " << f->seq.value << " <b>" << html_escape(f->rule) << "</b>: " << html_escape(f->message) << "</li>";
    }
    out << "</ul>\n";
  }
  out << "</body></html>\n";
  return out.str();
}

}  // namespace cs
