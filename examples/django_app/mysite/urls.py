from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("form", views.form),
    path("upload", views.upload),
    path("stream", views.stream),
    path("echo", views.echo),
    path("error", views.error),
]
