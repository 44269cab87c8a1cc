"""The page stylesheet of report.html (inlined; the chart styles come from charts.css())."""

PAGE_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f5f8;color:#1d2530;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1200px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:0 0 12px;padding-bottom:6px;border-bottom:1px solid #e3e7ec}
h3{font-size:15px;margin:18px 0 8px}
h4{font-size:13px;margin:14px 0 6px;color:#3d4a5c}
section{background:#fff;border:1px solid #e3e7ec;border-radius:8px;padding:16px 20px;margin:16px 0}
.meta{color:#5f6b7a;margin:0}
.inputs{margin:6px 0 0;padding-left:18px;color:#3d4a5c;font:12px/1.5 ui-monospace,Menlo,Consolas,monospace;
word-break:break-all}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px;background:none;
border:none;padding:0}
.card{background:#fff;border:1px solid #e3e7ec;border-radius:8px;padding:12px 16px}
.card .label{color:#5f6b7a;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:24px;font-weight:600;margin:2px 0}
.card .sub{color:#5f6b7a;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid #eef1f4;text-align:left;vertical-align:top}
th{color:#5f6b7a;font-weight:600;font-size:12px;background:#fafbfc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:hover{background:#f8fafc}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:20px}
.bar{height:10px;border-radius:2px;background:#4a90d9;min-width:1px}
.barcell{width:35%}
.narrow{max-width:560px}
.stack{display:flex;height:10px;border-radius:2px;overflow:hidden;background:#eef1f4;min-width:80px}
.stack span{display:block;height:100%}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.legend{display:flex;flex-wrap:wrap;gap:16px;color:#3d4a5c;font-size:12px;margin-bottom:6px}
.legend .item{display:inline-flex;align-items:center;gap:4px}
.legend svg.key{overflow:visible}
.note{color:#5f6b7a;font-size:12px;font-weight:normal}
.sensor{margin-top:10px}
.thumbs{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start;margin-bottom:10px}
figure{margin:0;width:var(--tw);background:#fafbfc;border:1px solid #e3e7ec;border-radius:6px;overflow:hidden}
figure img{display:block;width:100%;height:auto;border-bottom:3px solid #ccc}
figure.helpful img{border-bottom-color:#1f9d55}
figure.useless img{border-bottom-color:#8792a2}
figure.harmful img{border-bottom-color:#e3342f}
figcaption{padding:5px 7px;font-size:11px;line-height:1.35;color:#3d4a5c;word-break:break-word}
figcaption b{color:#1d2530}
.pill{display:inline-block;padding:0 6px;border-radius:9px;font-size:11px;background:#eef1f4;color:#3d4a5c}
.pill.kept{background:#def3e6;color:#17643a}
.pill.dropped{background:#f6e3e2;color:#8f2420}
.empty{color:#8792a2;font-style:italic}
footer{color:#8792a2;font-size:12px;text-align:center;margin-top:24px}
"""
