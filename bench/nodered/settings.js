// Node-RED for bench/bench_ivr.py: the flow in flows.json, no editor, warnings only.
module.exports = {
    flowFile: "flows.json",
    flowFilePretty: true,
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.NODERED_PORT || "1880", 10),
    httpAdminRoot: false,
    logging: { console: { level: "warn", metrics: false, audit: false } },
    editorTheme: { tours: false },
    externalModules: { autoInstall: false },
};
