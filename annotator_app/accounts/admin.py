from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from annotator_app.accounts.models import User


@admin.register(User)
class PlatformUserAdmin(UserAdmin):
    list_display = ("username", "email", "role", "is_active", "last_login")
    list_filter = ("role", "is_active")
    fieldsets = (*(UserAdmin.fieldsets or ()), ("Platform", {"fields": ("role",)}))
