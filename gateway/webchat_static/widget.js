/* Embed the helpline's chat on any site with one tag:
 *   <script src="https://gateway.example/chat/widget.js" async></script>
 * The chat runs in an iframe, so the host page's CSS and JS stay out of it. */
(function () {
  "use strict";
  if (window.__helplineWidget) { return; }
  window.__helplineWidget = true;
  var script = document.currentScript || document.querySelector('script[src*="/chat/widget.js"]');
  var base = script ? new URL(script.src, location.href).origin : location.origin;
  var french = (navigator.language || "fr").slice(0, 2) !== "en";

  function start() {
    var button = document.createElement("button");
    var label = french ? "Besoin de parler ?" : "Need to talk?";
    button.type = "button";
    button.textContent = label;
    button.setAttribute("aria-haspopup", "dialog");
    button.style.cssText = "position:fixed;right:16px;bottom:16px;z-index:2147483646;min-height:48px;padding:0 18px;" +
      "border:0;border-radius:24px;background:#3b5bdb;color:#fff;font:600 16px system-ui,sans-serif;cursor:pointer;" +
      "box-shadow:0 4px 14px rgba(0,0,0,.25)";
    var panel = document.createElement("div");
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", french ? "Chat d'écoute" : "Helpline chat");
    panel.style.cssText = "position:fixed;right:16px;bottom:76px;z-index:2147483647;width:min(380px,calc(100vw - 32px));" +
      "height:min(600px,calc(100vh - 100px));display:none;border-radius:16px;overflow:hidden;background:#fff;" +
      "box-shadow:0 8px 30px rgba(0,0,0,.3)";
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "×";
    close.setAttribute("aria-label", french ? "Fermer" : "Close");
    close.style.cssText = "position:absolute;top:4px;right:4px;width:32px;height:32px;border:0;border-radius:16px;" +
      "background:rgba(0,0,0,.1);cursor:pointer;font-size:20px;z-index:1";
    var frame = document.createElement("iframe");
    frame.title = french ? "Chat d'écoute" : "Helpline chat";
    frame.style.cssText = "width:100%;height:100%;border:0";
    panel.appendChild(close);
    panel.appendChild(frame);
    var loaded = false;  // until the chat's page is in the frame, the frame holds the host's about:blank: a message
    // for the chat's origin would be refused there with an error in the host site's console (the load tells it)
    function tell() {  // the chat counts what arrives while its panel is closed
      var open = panel.style.display !== "none";
      if (loaded && frame.contentWindow) { frame.contentWindow.postMessage({ type: "hg-widget", open: open }, base); }
    }
    button.addEventListener("click", function () {
      if (!frame.src) { frame.src = base + "/chat?embed=1"; }
      var opening = panel.style.display === "none";
      panel.style.display = opening ? "block" : "none";
      // the keyboard goes on in the chat (the launcher comes after the panel: Tab would leave the page), and a
      // screen reader says the chat's frame; its header (the quick exit) is the next Tab
      if (opening) { frame.focus(); }
      tell();
    });
    close.addEventListener("click", function () { panel.style.display = "none"; tell(); button.focus(); });
    frame.addEventListener("load", function () { loaded = !!frame.src; tell(); });  // not the first about:blank's
    window.addEventListener("message", function (event) {  // the unread count, shown on the launcher
      if (event.origin !== base || event.source !== frame.contentWindow) { return; }
      var data = event.data || {};
      if (data.type !== "hg-unread" || typeof data.count !== "number") { return; }
      var count = Math.max(0, Math.floor(data.count));
      button.textContent = count ? label + " (" + count + ")" : label;
      button.setAttribute("aria-label", count ? label + " " + count + (french ? " non lu(s)" : " unread") : label);
    });
    document.body.appendChild(panel);
    document.body.appendChild(button);
  }

  if (document.body) { start(); } else { document.addEventListener("DOMContentLoaded", start); }
})();
