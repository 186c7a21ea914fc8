// The bedside page: a keyboard-wedge scanner types the wristband, sends Enter, then the vial,
// sends Enter. Enter in the first field moves to the second; Enter in the second submits.
// The camera captures a frame and the server decodes it (zxing-cpp, the scan page's route);
// the code read fills the first empty field. No barcode decoder in the browser.
(function () {
  "use strict";

  var form = document.querySelector("[data-bedside-form]");
  if (!form) {
    return;
  }
  var fields = Array.prototype.slice.call(form.querySelectorAll("[data-bedside-field]"));

  var firstEmpty = function () {
    for (var i = 0; i < fields.length; i += 1) {
      if (!fields[i].value.trim()) {
        return fields[i];
      }
    }
    return null;
  };

  var next = function () {
    var empty = firstEmpty();
    if (empty) {
      empty.focus();
    } else {
      form.submit();
    }
  };

  fields.forEach(function (field) {
    field.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        next();
      }
    });
  });
  (firstEmpty() || fields[fields.length - 1]).focus();
  document.addEventListener("click", function (event) {
    if (!event.target.closest("input, button, a, summary, video, label")) {
      (firstEmpty() || fields[fields.length - 1]).focus();
    }
  });

  var camera = document.querySelector("[data-camera]");
  if (!camera || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return;
  }
  var start = camera.querySelector("[data-camera-start]");
  var video = camera.querySelector("[data-camera-video]");
  var controls = camera.querySelector("[data-camera-controls]");
  var capture = camera.querySelector("[data-camera-capture]");
  var stop = camera.querySelector("[data-camera-stop]");
  var status = camera.querySelector("[data-camera-status]");
  var canvas = document.createElement("canvas");
  var stream = null;
  var timer = null;
  var busy = false;

  var say = function (text, bad) {
    status.textContent = text;
    status.classList.toggle("bad", Boolean(bad));
  };
  var stopCamera = function () {
    if (timer) {
      clearInterval(timer);
      timer = null;
    }
    if (stream) {
      stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
    }
    video.hidden = true;
    controls.hidden = true;
    start.hidden = false;
  };
  var read = function (quiet) {
    if (busy || !stream || !video.videoWidth) {
      return;
    }
    busy = true;
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    canvas.toBlob(function (blob) {
      var body = new FormData();
      body.append("image", blob, "frame.jpg");
      fetch(camera.dataset.url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRFToken": camera.dataset.token }
      }).then(function (response) {
        return response.json().then(function (answer) {
          return { ok: response.ok, answer: answer };
        });
      }).then(function (result) {
        busy = false;
        if (result.ok && result.answer.code) {
          var field = firstEmpty();
          if (field) {
            field.value = result.answer.code;
          }
          say("Code read.");
          if (!firstEmpty()) {
            stopCamera();
            form.submit();
          }
        } else if (!quiet) {
          say(result.answer.reason || "The picture could not be read.", true);
        }
      }).catch(function () {
        busy = false;
        if (!quiet) {
          say("No connection to celltrail: try again, or use the scanner.", true);
        }
      });
    }, "image/jpeg", 0.92);
  };

  start.hidden = false;
  start.addEventListener("click", function () {
    say("Starting the camera…");
    navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } }
    }).then(function (media) {
      stream = media;
      video.srcObject = media;
      video.hidden = false;
      controls.hidden = false;
      start.hidden = true;
      say("Point the camera at the wristband, then at the vial.");
      return video.play();
    }).then(function () {
      timer = setInterval(function () { read(true); }, 1200);
    }).catch(function (error) {
      stopCamera();
      say("The camera is not available (" + error.name + "): use the scanner.", true);
    });
  });
  capture.addEventListener("click", function () { read(false); });
  stop.addEventListener("click", function () {
    stopCamera();
    say("");
  });
  window.addEventListener("pagehide", stopCamera);
}());
