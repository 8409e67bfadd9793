// The Mini App's only script: Telegram's sign-in data and theme, without loading anything.
// Inside Telegram, window.Telegram.WebApp (when Telegram's own script is present) or the
// URL fragment Telegram opens the page with (#tgWebAppData=...&tgWebAppThemeParams=...)
// carry initData and themeParams; ?initData=... is the tests' and the demo's way in.
(function () {
  "use strict";
  var webApp = window.Telegram && window.Telegram.WebApp;
  var hash = new URLSearchParams(location.hash.slice(1));
  var query = new URLSearchParams(location.search);

  function themeParams() {
    if (webApp && webApp.themeParams) return webApp.themeParams;
    try {
      var raw = hash.get("tgWebAppThemeParams");
      if (raw) sessionStorage.setItem("tgTheme", raw);
      return JSON.parse(raw || sessionStorage.getItem("tgTheme") || "{}");
    } catch (e) {
      return {};
    }
  }

  function applyTheme(params) {
    var style = document.documentElement.style;
    Object.keys(params || {}).forEach(function (key) {
      var value = String(params[key]);
      if (/^#[0-9a-fA-F]{3,8}$/.test(value)) {
        style.setProperty("--tg-theme-" + key.replace(/_/g, "-"), value);
      }
    });
  }

  function signIn() {
    var form = document.getElementById("login-form");
    if (!form) return;
    var initData = (webApp && webApp.initData) || hash.get("tgWebAppData") || query.get("initData") || "";
    if (!initData) {
      document.getElementById("status").textContent =
        "Open the dashboards from the bot's menu button in Telegram.";
      document.getElementById("signed-in").hidden = false;
      return;
    }
    form.elements.initData.value = initData;
    form.submit();
  }

  applyTheme(themeParams());
  if (webApp && webApp.ready) webApp.ready();
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", signIn);
  } else {
    signIn();
  }
})();
